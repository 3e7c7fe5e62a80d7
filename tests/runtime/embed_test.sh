#!/bin/bash
# Builds an artifact from text IR, runs examples/embed on it (the in-tree
# build, and a copy compiled here with only kiln.h and -lkiln_runtime) and
# checks what it prints.
#   embed_test.sh KILN_EMBED KILN_MAKE_ARTIFACT DATA_DIR WORK_DIR CC SOURCE_ROOT RUNTIME_LIB_DIR
set -euo pipefail
embed=$1 make_artifact=$2 data=$3 work=$4 cc=$5 root=$6 libdir=$7
rm -rf "$work" && mkdir -p "$work"
"$make_artifact" "$data/mlp.kir" "$work/mlp.kiln"

failures=0
expect() {  # expect NAME EXPECTED_EXIT EXPECTED_TEXT COMMAND...
  local name=$1 want_exit=$2 want_text=$3
  shift 3
  local got_exit=0
  "$@" >"$work/$name.out" 2>&1 || got_exit=$?
  if [ "$got_exit" != "$want_exit" ] || ! grep -qF -- "$want_text" "$work/$name.out"; then
    echo "FAIL $name: exit $got_exit (want $want_exit), output:"
    cat "$work/$name.out"
    echo "--- wanted to see: $want_text"
    failures=$((failures + 1))
  else
    echo "ok $name"
  fi
}

# The compiled-alone copy proves the example needs nothing but the public
# header and the shared library.
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic "$root/examples/embed/embed.c" -I"$root/include" \
  -L"$libdir" -lkiln_runtime -Wl,-rpath,"$libdir" -o "$work/embed_alone"

for binary in "$embed" "$work/embed_alone"; do
  tag=$(basename "$binary")
  # x = [1, 2]: h = x @ w = [5, -1, -0.5]; y = relu(h + b) = [5, 0, 0].
  expect "$tag-values" 0 "$(printf 'inputs:\n  x: f32[batch, 2]\noutputs:\n  y: f32[batch, 3]\n  h: f32[batch, 3]\nran:\n  y: f32[1, 3] = [5, 0, 0]\n  h: f32[1, 3] = [5, -1, -0.5]')" \
    "$binary" "$work/mlp.kiln" x=1x2:1,2
  # Ones of shape [2, 2]: each row h = [3, -1, 0], y = [3, 0, 0].
  expect "$tag-ones" 0 "y: f32[2, 3] = [3, 0, 0, 3, 0, 0]" "$binary" "$work/mlp.kiln" x=2x2
  expect "$tag-fill" 0 "h: f32[1, 3] = [0, 0, 0]" "$binary" "$work/mlp.kiln" --fill 0 x=1x2
  expect "$tag-symbolic-needs-shape" 1 "input 'x' is f32[batch, 2]; give its shape as x=DIMS" "$binary" "$work/mlp.kiln"
  expect "$tag-wrong-shape" 1 "input 'x': expected f32[batch, 2], got f32[2, 3]" "$binary" "$work/mlp.kiln" x=2x3
  expect "$tag-unknown-input" 1 "the model has no input 'z'" "$binary" "$work/mlp.kiln" z=1
  expect "$tag-missing-file" 1 "cannot open the file: No such file or directory" "$binary" "$work/absent.kiln"
  expect "$tag-help" 0 "usage: kiln_embed MODEL.kiln" "$binary" --help
done
exit $((failures > 0))
