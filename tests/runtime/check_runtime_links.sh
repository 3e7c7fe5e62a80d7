#!/bin/bash
# The runtime links neither ONNX, protobuf nor LLVM, libkiln_runtime.so
# exports the C API (kiln_*) and nothing else, and it holds the artifact
# loader but not the writer (which is the compiler's).
#   check_runtime_links.sh LIBKILN_RUNTIME.so EXECUTABLE_LINKING_THE_CORE...
set -u
status=0
for binary in "$@"; do
  needed=$(readelf -d "$binary" | grep NEEDED)
  resolved=$(ldd "$binary")
  if grep -Eiq 'onnx|protobuf|llvm' <<<"$needed$resolved"; then
    echo "FAIL: $binary links a compiler dependency:"
    grep -Ei 'onnx|protobuf|llvm' <<<"$needed$resolved"
    status=1
  else
    echo "ok: $binary links no ONNX, protobuf or LLVM"
  fi
done
exported=$(nm -D --defined-only "$1" | awk '{print $3}')
if [ -z "$exported" ]; then
  echo "FAIL: $1 exports nothing"
  status=1
fi
others=$(grep -v '^kiln_' <<<"$exported")
if [ -n "$others" ]; then
  echo "FAIL: $1 exports symbols outside the C API:"
  head -20 <<<"$others"
  status=1
else
  echo "ok: $1 exports only kiln_* ($(wc -l <<<"$exported") symbols)"
fi
# The whole symbol table, local symbols included: the loader must be there
# (else the table was stripped and the check below would prove nothing),
# the writer must not.
symbols=$(nm -C "$1")
if ! grep -q 'kiln::rt::loadArtifact' <<<"$symbols"; then
  echo "FAIL: $1 has no symbol kiln::rt::loadArtifact (stripped?); cannot check for the writer"
  status=1
elif grep -Eq 'writeArtifact|ArtifactWrite|WeightPlacement|ArtifactFile' <<<"$symbols"; then
  echo "FAIL: $1 holds the artifact writer:"
  grep -E 'writeArtifact|ArtifactWrite|WeightPlacement|ArtifactFile' <<<"$symbols" | head -20
  status=1
else
  echo "ok: $1 holds the artifact loader and no writer"
fi
exit $status
