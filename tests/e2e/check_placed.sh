#!/bin/sh
# A model placed across devices, end to end (docs/placement.md):
#   check_placed.sh KILN MODEL_DIR WORK_DIR ATOL TARGETS PROFILE PLACEMENT [static]
# For each data set: compiles the model with --targets TARGETS
# --device-profile PROFILE --placement PLACEMENT (with `static`, the data
# set's input shapes fixed, as a static-shape device needs), checks that the
# plan uses a device other than the host, and runs it with --check against
# the float64 reference. Exits 77 (skipped) without the model dir or without
# an OpenCL device.
set -eu
kiln=$1 model_dir=$2 work=$3 atol=$4 targets=$5 profile=$6 placement=$7 shapes=${8:-}
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
# A PoCL kernel cache of this test's own: PoCL 3.1 asserts (pocl_binary.c,
# `len > 0`) when one process reads a kernel another is still writing to a
# shared cache, as two placed models compiling the same kernel at once did.
export POCL_CACHE_DIR="$work/pocl-cache"
for data_set in "$model_dir"/test_data_set_*; do
  name=$(basename "$data_set")
  shape_flags=""
  if [ "$shapes" = static ]; then
    # Each input_N.pb is a TensorProto: its name and dims fix that input.
    shape_flags=$(/usr/bin/python3 - "$data_set" <<'PY'
import glob, sys
from onnx import TensorProto
for path in sorted(glob.glob(sys.argv[1] + "/input_*.pb")):
    tensor = TensorProto()
    tensor.ParseFromString(open(path, "rb").read())
    print(f"--input-shape {tensor.name}={'x'.join(str(d) for d in tensor.dims)}", end=" ")
PY
)
  fi
  # shellcheck disable=SC2086
  "$kiln" compile "$model_dir/model.onnx" -o "$work/$name.kiln" --targets "$targets" \
    --device-profile "$profile" --placement "$placement" $shape_flags --report "$work/$name.json"
  if ! grep -q '"opencl": [1-9]' "$work/$name.json"; then
    echo "FAIL: the placement put no op on opencl:"
    grep '"placement"' "$work/$name.json"
    exit 1
  fi
  "$kiln" run "$work/$name.kiln" --input-dir "$data_set" --check --atol "$atol"
done
