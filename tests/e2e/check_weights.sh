#!/bin/sh
# --weights reference end to end on a model dir (ONNX backend-test layout):
#   check_weights.sh KILN MODEL_DIR WORK_DIR ATOL
# Compiles the model twice with the same passes: --weights embed, and
# --weights reference (which skips sibling_matmul_merge, so the embed
# artifact skips it too). The reference artifact must reference some of the
# model's bytes and be smaller. Then for every data set each artifact runs
# with --check against the float64 reference, and both give byte-identical
# outputs: where the weights live must not change a single bit.
# A missing MODEL_DIR exits 77 (skipped).
set -eu
kiln=$1 model_dir=$2 work=$3 atol=$4
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
"$kiln" compile "$model_dir/model.onnx" -o "$work/embed.kiln" --weights embed --disable-pass sibling_matmul_merge
"$kiln" compile "$model_dir/model.onnx" -o "$work/reference.kiln" --weights reference
"$kiln" inspect "$work/reference.kiln" > "$work/inspect.txt"
if ! grep -q "^weight file 0: .*model.onnx" "$work/inspect.txt" ||
   ! grep -q "// file 0 at offset" "$work/inspect.txt"; then
  echo "FAIL: the reference artifact references nothing of the model:"
  sed -n '1,12p' "$work/inspect.txt"
  exit 1
fi
embed_bytes=$(wc -c < "$work/embed.kiln")
reference_bytes=$(wc -c < "$work/reference.kiln")
echo "artifact bytes: embed $embed_bytes, reference $reference_bytes"
if [ "$reference_bytes" -ge "$embed_bytes" ]; then
  echo "FAIL: the reference artifact is not smaller than the embed one"
  exit 1
fi

for data_set in "$model_dir"/test_data_set_*; do
  name=$(basename "$data_set")
  for mode in embed reference; do
    "$kiln" run "$work/$mode.kiln" --input-dir "$data_set" --output-dir "$work/$name.$mode" --check --atol "$atol"
  done
  for output in "$work/$name.embed"/output_*.pb; do
    if ! cmp "$output" "$work/$name.reference/$(basename "$output")"; then
      echo "FAIL: $name: $(basename "$output") differs between the embed and reference artifacts"
      exit 1
    fi
  done
  echo "$name: embed and reference outputs identical"
done
