#!/bin/bash
# The include graph between the top-level folders: folder A depends on folder
# B when a file under A includes a header under B. Fails on an include the
# layering forbids (the runtime includes no backend: backends register their
# devices, see runtime/device.h; the IR includes neither) and on any cycle
# between folders, listing the includes that make it.
#   check_folder_includes.sh SOURCE_ROOT
set -u
root=$1
forbidden=("runtime backends" "ir runtime" "ir backends")

# The source folders: top-level ones that are neither hidden nor a build tree.
folders=()
for dir in "$root"/*/; do
  [ -e "$dir/CMakeCache.txt" ] || folders+=("$(basename "$dir")")
done

# An included path's folder: its first component at the top level, or
# include/ for the public headers ("kiln/kiln.h"); empty for anything else.
folder_of_include() {
  local first=${1%%/*}
  [ "$first" = "$1" ] && return
  if [ -d "$root/$first" ]; then echo "$first"
  elif [ -e "$root/include/$1" ]; then echo include
  fi
}

declare -A includes   # "A B" -> the include lines of A that name B
declare -A reaches    # "A B" -> 1 when A depends on B, directly or not
include_line='^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]+)[">]'
while IFS= read -r line; do
  [[ $line =~ $include_line ]] || continue
  file=${BASH_REMATCH[1]} number=${BASH_REMATCH[2]} header=${BASH_REMATCH[3]}
  from=${file%%/*}
  to=$(folder_of_include "$header")
  [ -z "$to" ] || [ "$to" = "$from" ] && continue
  includes["$from $to"]+="    $file:$number includes $header"$'\n'
  reaches["$from $to"]=1
done < <(cd "$root" && grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' \
           --include='*.h' --include='*.cpp' --include='*.c' --include='*.def' --include='*.inc' "${folders[@]}")

status=0
for rule in "${forbidden[@]}"; do
  if [ -n "${includes[$rule]:-}" ]; then
    read -r from to <<<"$rule"
    echo "FAIL: $from/ includes $to/:"
    printf '%s' "${includes[$rule]}"
    status=1
  fi
done

# Transitive closure (Floyd-Warshall; a dozen folders).
for k in "${folders[@]}"; do
  for i in "${folders[@]}"; do
    [ -n "${reaches["$i $k"]:-}" ] || continue
    for j in "${folders[@]}"; do
      [ -n "${reaches["$k $j"]:-}" ] && reaches["$i $j"]=1
    done
  done
done

cycles=0
for ((a = 0; a < ${#folders[@]}; ++a)); do
  for ((b = a + 1; b < ${#folders[@]}; ++b)); do
    A=${folders[a]} B=${folders[b]}
    [ -n "${reaches["$A $B"]:-}" ] && [ -n "${reaches["$B $A"]:-}" ] || continue
    cycles=$((cycles + 1))
    echo "FAIL: $A/ and $B/ include each other (directly or through other folders):"
    printf '%s' "${includes["$A $B"]:-    (through other folders)$'\n'}" "${includes["$B $A"]:-    (through other folders)$'\n'}"
  done
done
[ "$cycles" -eq 0 ] || status=1
echo "$cycles pair(s) of folders in an include cycle, among: ${folders[*]}"
exit $status
