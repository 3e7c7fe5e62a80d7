#!/usr/bin/python3
"""Fails when code outside the op table, the text parser and the importers
identifies an op by its name string instead of its OpKind.

usage: op_name_comparisons.py SOURCE_ROOT
Counts, in every C++ file of SOURCE_ROOT except tests/, frontend/ (the
importers map their formats' names), ir/parser.cpp (the text form) and the
op table itself: comparisons with an OpDef's name (`def->name == ...`), and
comparisons of a name with a string literal that names an op
(`name == "matmul"`), and registry lookups by such a literal
(`find("gather")`). Attribute values that happen to spell an op
(`approximate == "tanh"`) are not op identity and are not counted.
Prints each place and the count; exit 1 when the count is not zero.
"""
import os
import re
import sys

ALLOWED = ("tests/", "frontend/", "ir/parser.cpp", "ir/ops.def", "ir/op_kind.h", "build")
NAME_COMPARISON = re.compile(r"def(->|\.)name\s*[!=]=|[!=]=\s*\w*(->|\.)def(->|\.)name")


def op_names(root):
    with open(os.path.join(root, "ir", "ops.def")) as table:
        return {m.group(1) for m in re.finditer(r'KILN_OP\(\w+, "(\w+)"\)', table.read())}


def literal_use(names):
    alternatives = "|".join(sorted(names))
    return re.compile(rf'[nN]ame(\(\))?\s*[!=]=\s*"({alternatives})"|"({alternatives})"\s*[!=]=\s*\w*[nN]ame\b'
                      rf'|find\("({alternatives})"\)')


def offending_lines(path, literal):
    with open(path, errors="replace") as source:
        for number, line in enumerate(source, 1):
            code = line.split("//")[0]
            if NAME_COMPARISON.search(code) or literal.search(code):
                yield number, line.strip()


def main(root):
    literal = literal_use(op_names(root))
    found = []
    for directory, _, files in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        if relative_dir.startswith((".git", "build")):
            continue
        for name in sorted(files):
            relative = os.path.normpath(os.path.join(relative_dir, name))
            if name.endswith((".cpp", ".h")) and not relative.startswith(ALLOWED):
                found += [(relative, n, text) for n, text in offending_lines(os.path.join(directory, name), literal)]
    for relative, number, text in found:
        print(f"{relative}:{number}: op identified by name: {text}")
    print(f"op-name string comparisons outside the op table, the text parser and the importers: {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(sys.argv[1]))
