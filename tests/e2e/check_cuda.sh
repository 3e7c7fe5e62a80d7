#!/bin/sh
# A model compiled for the CUDA device, end to end:
#   check_cuda.sh KILN MODEL_DIR WORK_DIR ATOL
# Compiles the model with --targets cuda,cpu --placement naive (every op the
# CUDA device runs on it, the h100 profile), checks that the placement used
# the device and that the artifact carries its NVRTC-compiled code, then runs
# each data set with --check against the float64 reference: on the GPU where
# there is one, on the host where there is no driver (the runtime says so and
# falls back). Exits 77 (skipped) without the model dir or without NVRTC (no
# CUDA toolkit) to compile with.
set -eu
kiln=$1 model_dir=$2 work=$3 atol=$4
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
if ! "$kiln" compile "$model_dir/model.onnx" -o "$work/model.kiln" --targets cuda,cpu --placement naive \
    --report "$work/report.json" 2> "$work/compile.err"; then
  cat "$work/compile.err"
  if grep -q "no NVRTC:" "$work/compile.err"; then
    echo "SKIPPED: no CUDA toolkit to compile the kernels with"
    exit 77
  fi
  exit 1
fi
if ! grep -q '"cuda": [1-9]' "$work/report.json"; then
  echo "FAIL: the placement put no op on cuda:"
  grep '"placement"' "$work/report.json"
  exit 1
fi
"$kiln" inspect "$work/model.kiln" > "$work/inspect.txt"
if ! grep -q '^device code: cuda: [1-9][0-9]* programs, [1-9][0-9]* binary bytes' "$work/inspect.txt"; then
  echo "FAIL: the artifact carries no CUDA code:"
  grep '^device code' "$work/inspect.txt" || true
  exit 1
fi
if ! grep -q '^  norms: sm_80, sm_90, compute_90 (NVRTC ' "$work/inspect.txt"; then
  echo "FAIL: the CUDA code is not for sm_80 and sm_90 with compute_90 PTX:"
  grep -A3 '^device code' "$work/inspect.txt" || true
  exit 1
fi
for data_set in "$model_dir"/test_data_set_*; do
  "$kiln" run "$work/model.kiln" --input-dir "$data_set" --check --atol "$atol"
done
