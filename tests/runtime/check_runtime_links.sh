#!/bin/bash
# The runtime links neither ONNX, protobuf nor LLVM, and libkiln_runtime.so
# exports the C API (kiln_*) and nothing else.
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
exit $status
