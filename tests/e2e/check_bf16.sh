#!/bin/sh
# --precision bf16 end to end on a model dir (ONNX backend-test layout):
#   check_bf16.sh KILN MODEL_DIR F32_ARTIFACT BF16_ARTIFACT RTOL MAX_KL
# Compiles the model with --precision bf16, then for every data set checks
# the bf16 run against the float64 reference outputs: each output within
# RTOL times the largest |value| of the f32 run's outputs (bf16 keeps about
# 3 significant digits, so its error scales with the logits: gpt2-tiny's
# reach 111), each f32 output's mean softmax KL
# divergence at most MAX_KL nats and above the f32 artifact's (which the
# e2e fixture compiled): a conversion that did not happen gives f32's figure,
# a broken one a large divergence. The bf16 artifact must also be smaller.
# A missing MODEL_DIR exits 77 (skipped).
set -eu
kiln=$1 model_dir=$2 f32_artifact=$3 bf16_artifact=$4 rtol=$5 max_kl=$6
if [ ! -d "$model_dir" ]; then
  echo "SKIPPED: $model_dir not found"
  exit 77
fi
"$kiln" compile "$model_dir/model.onnx" -o "$bf16_artifact" --precision bf16
f32_bytes=$(wc -c < "$f32_artifact")
bf16_bytes=$(wc -c < "$bf16_artifact")
echo "artifact bytes: f32 $f32_bytes, bf16 $bf16_bytes"
if [ "$bf16_bytes" -ge "$f32_bytes" ]; then
  echo "FAIL: the bf16 artifact is not smaller than the f32 one"
  exit 1
fi

# The mean KL of each f32 output, one per line, from `kiln run --check` output.
mean_kls() {
  sed -n 's/.*softmax KL(ref||kiln) mean \([^ ]*\) max.*/\1/p'
}

status=0
for data_set in "$model_dir"/test_data_set_*; do
  # Without --check, run prints each output's min and max.
  atol=$("$kiln" run "$f32_artifact" --input-dir "$data_set" |
    sed -n 's/.*: min \([^,]*\), max \([^,]*\),.*/\1 \2/p' |
    awk -v rtol="$rtol" '{ for (i = 1; i <= 2; ++i) { v = $i < 0 ? -$i : $i; if (v > top) top = v } }
                         END { printf "%g", rtol * top }')
  f32_out=$("$kiln" run "$f32_artifact" --input-dir "$data_set" --check --atol 1)
  bf16_out=$("$kiln" run "$bf16_artifact" --input-dir "$data_set" --check --atol "$atol") || status=1
  echo "$(basename "$data_set") f32:"
  echo "$f32_out"
  echo "$(basename "$data_set") bf16:"
  echo "$bf16_out"
  echo "$f32_out" | mean_kls > "$bf16_artifact.f32-kl"
  echo "$bf16_out" | mean_kls > "$bf16_artifact.bf16-kl"
  # awk compares the figures as numbers; nan or inf fails.
  if ! paste "$bf16_artifact.f32-kl" "$bf16_artifact.bf16-kl" | awk -v max="$max_kl" '
      NF != 2 { print "FAIL: output " NR - 1 " has a KL figure in one run only"; bad = 1; next }
      !($2 + 0 <= max + 0 && $2 + 0 > $1 + 0) {
        print "FAIL: output " NR - 1 ": bf16 KL " $2 " is not in (f32 KL " $1 ", " max "]"; bad = 1 }
      END { if (NR == 0) { print "FAIL: no KL figure"; bad = 1 } exit bad }'; then
    status=1
  fi
done
exit $status
