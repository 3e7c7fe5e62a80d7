#!/bin/sh
# Latent attention, end to end (docs/latent-attention.md):
#   check_latent.sh KILN MODEL_DIR WORK_DIR ATOL [MODE]
# Compiles the model as it is and with --latent-attention MODE (default
# exact), checks that the pass rewrote every attention op, then for each data
# set runs the original artifact and checks the latent one against its
# outputs within ATOL (latent_data_set.py puts the data set's KV pairs,
# inputs and reference outputs, in the exact latent layout). A compressing
# MODE at full rank must be as exact; its latent basis is the pass's own, so
# it is checked on models without a KV cache only. Exits 77 (skipped)
# without the model dir, or for a compressing MODE on a model with a cache.
set -eu
kiln=$1 model_dir=$2 work=$3 atol=$4 mode=${5:-exact}
here=$(dirname "$0")
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
"$kiln" compile "$model_dir/model.onnx" -o "$work/original.kiln"
"$kiln" compile "$model_dir/model.onnx" -o "$work/latent.kiln" --latent-attention "$mode" --report "$work/latent.json"
if [ "$mode" != exact ] && "$kiln" inspect "$work/original.kiln" | grep -q '^kv cache: [1-9]'; then
  echo "SKIPPED: --latent-attention $mode: a past cannot be put in the compressed latent's basis"
  exit 77
fi
if grep -q '"attention": [1-9]' "$work/latent.json" || ! grep -q '"latent_attention": [1-9]' "$work/latent.json"; then
  echo "FAIL: --latent-attention $mode left attention ops:"
  grep -A3 '"ops_by_kind"' "$work/latent.json"
  exit 1
fi
# The latent rows' layout: with RoPE, its pairs after the values.
rope=none
if "$kiln" inspect "$work/latent.kiln" | grep -q 'latent_attention.*rope = "half"'; then rope=half; fi
for data_set in "$model_dir"/test_data_set_*; do
  name=$(basename "$data_set")
  "$kiln" run "$work/original.kiln" --input-dir "$data_set" --output-dir "$work/$name.original"
  /usr/bin/python3 "$here/latent_data_set.py" "$data_set" "$work/$name.original" "$work/$name.latent" --rope "$rope"
  "$kiln" run "$work/latent.kiln" --input-dir "$work/$name.latent" --check --atol "$atol"
done
