#!/bin/sh
# One end-to-end step on a model dir in the ONNX backend-test layout:
#   check_model.sh compile KILN MODEL_DIR ARTIFACT
#   check_model.sh run KILN MODEL_DIR ARTIFACT DATA_SET ATOL
# A missing MODEL_DIR (../shared/models on a clone without ../shared) exits 77,
# which ctest reports as skipped.
set -u
step=$1 kiln=$2 model_dir=$3 artifact=$4
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
case "$step" in
  compile)
    exec "$kiln" compile "$model_dir/model.onnx" -o "$artifact" ;;
  run)
    exec "$kiln" run "$artifact" --input-dir "$model_dir/$5" --check --atol "$6" ;;
  *)
    echo "check_model.sh: unknown step '$step'" >&2
    exit 2 ;;
esac
