#!/bin/sh
# An artifact compiled with --targets opencl carries its OpenCL programs
# (docs/artifact.md, "Device code"):
#   check_ahead.sh KILN MODEL_DIR WORK_DIR ATOL
# compiles the model, checks that `kiln inspect` lists the device's programs
# and binaries, then runs test_data_set_0 with --check: from the binaries,
# building nothing at first use and saying nothing, then with
# KILN_OPENCL_IGNORE_BINARIES, building from source and saying so. Exits 77
# (skipped) without the model dir or without an OpenCL device.
set -eu
kiln=$1 model_dir=$2 work=$3 atol=$4
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
if ! clinfo -l 2>/dev/null | grep -q "Device"; then
  echo "SKIPPED: no OpenCL device (clinfo -l lists none)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
"$kiln" compile "$model_dir/model.onnx" -o "$work/model.kiln" --targets opencl
"$kiln" inspect "$work/model.kiln" > "$work/inspect.txt"
if ! grep -Eq '^device code: opencl: [1-9][0-9]* programs, [1-9][0-9]* binary bytes' "$work/inspect.txt"; then
  echo "FAIL: kiln inspect lists no OpenCL programs with binaries:"
  head -12 "$work/inspect.txt"
  exit 1
fi
grep '^device code:' "$work/inspect.txt"

KILN_OPENCL_VERBOSE=1 "$kiln" run "$work/model.kiln" --input-dir "$model_dir/test_data_set_0" --check \
  --atol "$atol" 2> "$work/binaries.err"
if [ -s "$work/binaries.err" ]; then
  echo "FAIL: a run from the artifact's binaries built or said something:"
  cat "$work/binaries.err"
  exit 1
fi

KILN_OPENCL_IGNORE_BINARIES=1 "$kiln" run "$work/model.kiln" --input-dir "$model_dir/test_data_set_0" --check \
  --atol "$atol" 2> "$work/source.err"
if ! grep -q "^kiln: opencl: KILN_OPENCL_IGNORE_BINARIES is set; building the artifact's programs from source$" \
    "$work/source.err"; then
  echo "FAIL: a run ignoring the binaries did not say it built from source:"
  cat "$work/source.err"
  exit 1
fi
echo "PASS: programs from the artifact, and from source when its binaries are ignored"
