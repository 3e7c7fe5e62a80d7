#!/usr/bin/env python3
"""The optimisation pipeline's effect per model, from `kiln compile --report`:
ONNX non-Constant nodes, final IR ops, the reduction, attention ops against
the model's layer count, what shape arithmetic is left, and the pipeline time
(median over --repeat compiles), then the per-pass times of the last model.

usage: bench/pipeline_table.py [--kiln BUILD/tools/kiln] [--repeat N] MODEL_DIR...
Layer counts come from ../shared/models/gen.py's PRESETS when the folder is
named after a preset. Exit 1 when a target fails: one attention per layer, no
shape arithmetic left, final ops at least 85% below the ONNX non-Constant nodes.
Needs stdlib python only.
"""
import argparse, ast, json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE_OPS = {"shape", "size", "unsqueeze", "squeeze", "range", "constant_of_shape"}


def preset_layers():
    gen = os.path.join(ROOT, "..", "shared", "models", "gen.py")
    if not os.path.exists(gen):
        return {}
    for node in ast.walk(ast.parse(open(gen).read())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PRESETS":
            presets = {}
            for key, value in zip(node.value.keys, node.value.values):
                for kw in value.keywords:
                    if kw.arg == "layers":
                        presets[key.value] = ast.literal_eval(kw.value)
            return presets
    return {}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--kiln", default=os.path.join(ROOT, "build", "tools", "kiln"))
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    layers = preset_layers()
    failed = False
    print(f"{'model':<20} {'onnx':>5} {'final':>5} {'reduction':>9} {'attention':>9} {'layers':>6} "
          f"{'shape ops':>9} {'pipeline ms':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for model_dir in a.models:
            name = os.path.basename(os.path.normpath(model_dir))
            reports = []
            for i in range(a.repeat):
                path = os.path.join(tmp, f"{name}-{i}.json")
                subprocess.run([a.kiln, "compile", os.path.join(model_dir, "model.onnx"), "-o",
                                os.path.join(tmp, name + ".kiln"), "--report", path],
                               check=True, capture_output=True)
                reports.append(json.load(open(path)))
            r = reports[-1]
            kinds = r["ops_by_kind"]
            attention = kinds.get("attention", 0)
            shape_left = sum(n for k, n in kinds.items() if k in SHAPE_OPS)
            reduction = 1 - r["ir_ops_final"] / r["onnx_nonconstant_nodes"]
            expected = layers.get(name)
            ms = statistics.median(x["pipeline_ms"] for x in reports)
            ok = reduction >= 0.85 and shape_left == 0 and (expected is None or attention == expected)
            failed |= not ok
            print(f"{name:<20} {r['onnx_nonconstant_nodes']:>5} {r['ir_ops_final']:>5} {reduction:>8.1%} "
                  f"{attention:>9} {expected if expected is not None else '-':>6} {shape_left:>9} {ms:>11.2f}"
                  f"{'' if ok else '  MISSES A TARGET'}")
    print(f"\nper-pass times, {name} (median of {a.repeat}, ms; verify is the verifier after the pass):")
    for i, step in enumerate(r["passes"]):
        ms = statistics.median(x["passes"][i]["ms"] for x in reports)
        verify = statistics.median(x["passes"][i]["verify_ms"] for x in reports)
        print(f"  {step['name']:<24} {ms:>7.2f}  verify {verify:>6.2f}  ops {step['ops_before']:>4} -> {step['ops_after']:<4}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
