#!/bin/bash
# examples/sentence_similarity on the zoo's BERT (random weights, so the
# figures mean nothing, but their structure does): with a 128-word vocabulary
# made here, every sentence is 1.000 similar to itself, the matrix is
# symmetric, and the same sentence in another row and another padding gives
# the same row (padding does not leak into the embedding). A missing
# vocabulary is an error naming it, exit 1.
#   check_sentence_similarity.sh SIMILARITY KILN MODEL_DIR WORK_DIR
set -euo pipefail
similarity=$1 kiln=$2 model_dir=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
"$kiln" compile "$model_dir/model.onnx" -o "$work/model.kiln" >/dev/null
{
  printf '%s\n' "[PAD]" "[UNK]" "[CLS]" "[SEP]" the cat sat on a mat dog "##s" ran "." ","
  for i in $(seq 15 127); do echo "word$i"; done
} >"$work/vocab.txt"
"$similarity" "$work/model.kiln" "$work/vocab.txt" "The cat sat on a mat." "the dogs ran, far away" \
  "The cat sat on a mat." >"$work/out.txt"
cat "$work/out.txt"
/usr/bin/python3 - "$work/out.txt" <<'PY'
import sys
rows = [line.split()[:3] for line in open(sys.argv[1])]
m = [[float(x) for x in r] for r in rows]
assert len(m) == 3, "three rows"
assert all(m[i][i] == 1.0 for i in range(3)), "a sentence is 1.000 similar to itself"
assert all(m[i][j] == m[j][i] for i in range(3) for j in range(3)), "symmetric"
assert m[0] == m[2], "the same sentence in another row gives the same row"
assert m[0][1] < 1.0, "different sentences differ"
PY
if "$similarity" "$work/model.kiln" "$work/no-such-vocab.txt" a b 2>"$work/err.txt"; then
  echo "FAIL: a missing vocabulary did not fail"; exit 1
fi
grep -q "cannot read the vocabulary" "$work/err.txt"
echo "PASS"
