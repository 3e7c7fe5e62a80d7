#!/usr/bin/env python3
"""The model zoo's table: how far kiln fuses each family, how exact it runs, how fast.

usage: bench/zoo.py [--kiln BUILD/tools/kiln] [--model-dir DIR]... [--minilm] [--latency]
                    [--peer-python PY] [--write DOC | --check DOC]
Model dirs: every folder of models/zoo with a zoo.json, or those --model-dir names;
--minilm adds ~/.cache/kiln-zoo/all-minilm-l6-v2, which models/zoo/minilm.py writes. Per model: `kiln compile --report` gives the ONNX graph's
non-constant nodes, kiln's ops after the pipeline and the attention ops (against
zoo.json's attention layers); `kiln inspect` counts the shape arithmetic left
(shape, size, range, constant_of_shape, and any op making only integer scalars or
vectors); `kiln run --check` the max abs difference from the float64 reference on
data sets 0 and 1. --latency adds kiln's median latency on data set 0 (`kiln
bench`, 2 threads) and ONNX Runtime's (../shared/peer/peer.py), 20 runs after 3.
Prints the markdown table; --write DOC replaces the table between the markers
<!-- zoo-table --> and <!-- /zoo-table --> in DOC; --check DOC recomputes every
column but latency and fails (exit 1), naming the cells, where DOC's table
differs: the counts exactly, the differences by staying within 1e-4. DOC's rows
of models not measured are not checked.
"""
import argparse, glob, json, math, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import fidelity  # noqa: E402  (peer_python)

ATOL = 1e-4
MINILM = os.path.expanduser("~/.cache/kiln-zoo/all-minilm-l6-v2")
HEADER = ["model", "ONNX nodes", "kiln ops", "fewer ops", "attention / layers", "shape ops left",
          "max abs diff set 0", "max abs diff set 1", "kiln ms", "ORT ms", "ORT / kiln"]
LATENCY_COLUMNS = {"kiln ms", "ORT ms", "ORT / kiln"}
DIFF_COLUMNS = {"max abs diff set 0", "max abs diff set 1"}
SHAPE_KINDS = {"shape", "size", "range", "constant_of_shape"}
BEGIN, END = "<!-- zoo-table -->", "<!-- /zoo-table -->"


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def shape_ops_left(listing):
    """Ops of the shape kinds, or whose every result is an integer scalar or vector."""
    count = 0
    for line in listing.splitlines():
        m = re.match(r"\s+%.* = (\w+) .*?: (.*?)(?: on \"\w+\")?(?: loc\(.*\))?$", line)
        if not m:
            continue
        kind, types = m.group(1), m.group(2)
        results = re.findall(r"(\w+)\[([^\]]*)\]", types)
        small_ints = results and all(t in ("i64", "i32") and d.count(",") == 0 for t, d in results)
        count += kind in SHAPE_KINDS or bool(small_ints)
    return count


def max_diff(kiln, artifact, data_dir):
    out = run([kiln, "run", artifact, "--input-dir", data_dir, "--check", "--atol", "1"])
    diffs = [float(x) for x in re.findall(r"max abs diff ([0-9.eE+-]+)", out)]
    return max(diffs) if diffs else None


def latency(kiln, peer_py, model_dir, artifact):
    bench = json.loads(run([kiln, "bench", artifact, "--input-dir", f"{model_dir}/test_data_set_0",
                            "--iters", "20", "--warmup", "3", "--threads", "2"]).strip().splitlines()[-1])
    peer = os.path.join(ROOT, "..", "shared", "peer", "peer.py")
    ort = json.loads(run([peer_py, peer, model_dir, "--engine", "ort", "--iters", "20", "--warmup", "3",
                          "--threads", "2", "--data-set", "0"]).strip().splitlines()[-1])
    return bench["latency_ms_median"], ort["latency_ms_median"]


def row(a, model_dir, peer_py, tmp):
    manifest = json.load(open(os.path.join(model_dir, "zoo.json")))
    artifact, report = os.path.join(tmp, "model.kiln"), os.path.join(tmp, "report.json")
    run([a.kiln, "compile", os.path.join(model_dir, "model.onnx"), "-o", artifact, "--report", report])
    r = json.load(open(report))
    onnx_nodes, ops = r["onnx_nonconstant_nodes"], r["ir_ops_final"]
    cells = {"model": manifest["family"], "ONNX nodes": str(onnx_nodes), "kiln ops": str(ops),
             # rounded down, so a row at 84.96% does not read as 85.0%
             "fewer ops": f"{math.floor(1000 * (1 - ops / onnx_nodes)) / 10:.1f}%",
             "attention / layers": f"{r['ops_by_kind'].get('attention', 0)} / {manifest['attention_layers']}",
             "shape ops left": str(shape_ops_left(run([a.kiln, "inspect", artifact])))}
    for k in (0, 1):
        cells[f"max abs diff set {k}"] = f"{max_diff(a.kiln, artifact, f'{model_dir}/test_data_set_{k}'):.1e}"
    if a.latency:
        kiln_ms, ort_ms = latency(a.kiln, peer_py, model_dir, artifact)
        cells.update({"kiln ms": f"{kiln_ms:.3f}", "ORT ms": f"{ort_ms:.3f}", "ORT / kiln": f"{ort_ms / kiln_ms:.2f}x"})
    else:
        cells.update({c: "" for c in LATENCY_COLUMNS})
    return cells


def markdown(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r[c] for c in HEADER) + " |" for r in rows]
    return "\n".join(lines)


def parse_table(text):
    if BEGIN not in text or END not in text:
        sys.exit(f"bench/zoo.py: no {BEGIN} ... {END} table in the document")
    lines = [l for l in text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in l.strip("|").split("|")] for l in lines[2:])}


def check(doc_rows, rows):
    problems = []
    for r in rows:
        want = doc_rows.get(r["model"])
        if want is None:
            problems.append(f"{r['model']}: no row in the document")
            continue
        for column in HEADER:
            if column in LATENCY_COLUMNS:
                continue
            if column in DIFF_COLUMNS:
                measured, written = float(r[column]), float(want.get(column, "nan"))
                if not (measured <= ATOL and written <= ATOL):
                    problems.append(f"{r['model']}: {column} measured {r[column]}, written {want.get(column)} "
                                    f"(both must be within {ATOL})")
            elif want.get(column) != r[column]:
                problems.append(f"{r['model']}: {column} is {r[column]}, the document says {want.get(column)}")
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kiln", default=os.path.join(ROOT, "build", "tools", "kiln"))
    p.add_argument("--model-dir", action="append", default=[])
    p.add_argument("--minilm", action="store_true", help=f"add {MINILM}")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--peer-python")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write")
    group.add_argument("--check")
    a = p.parse_args()
    dirs = a.model_dir or sorted(d for d in glob.glob(os.path.join(ROOT, "models", "zoo", "*"))
                                 if os.path.exists(os.path.join(d, "zoo.json")))
    if a.minilm:
        if not os.path.exists(os.path.join(MINILM, "zoo.json")):
            sys.exit(f"bench/zoo.py: {MINILM} not found: make it with models/zoo/minilm.py (models/zoo/README.md)")
        dirs.append(MINILM)
    peer_py = (a.peer_python or fidelity.peer_python()) if a.latency else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in dirs:
            rows.append(row(a, d, peer_py, tmp))
    table = markdown(rows)
    if a.check:
        problems = check(parse_table(open(a.check).read()), rows)
        for problem in problems:
            print(f"bench/zoo.py --check: {problem}", file=sys.stderr)
        print(f"{len(rows)} models checked against {a.check}: {'FAIL' if problems else 'PASS'}")
        sys.exit(1 if problems else 0)
    if a.write:
        text = open(a.write).read()
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        open(a.write, "w").write(f"{before}{BEGIN}\n{table}\n{END}{after}")
    print(table)


if __name__ == "__main__":
    main()
