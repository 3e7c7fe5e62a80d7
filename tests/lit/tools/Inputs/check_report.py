"""Checks a `kiln compile --report` JSON file: every documented field is there
with its type, and the numbers agree with each other (op counts chain through
the passes, ops_by_kind sums to ir_ops_final, the gain is the cost ratio, the
memory plan sits between its lower bound and the naive size)."""
import json
import sys

report = json.load(open(sys.argv[1]))
errors = []


def expect(condition, message):
    if not condition:
        errors.append(message)


ints = ["onnx_nodes", "onnx_nonconstant_nodes", "ir_ops_initial", "ir_ops_final"]
numbers = ["pipeline_ms", "import_ms", "write_ms", "compile_ms", "fusion_gain_ratio"]
for field in ints:
    expect(isinstance(report.get(field), int), f"{field} is not an integer")
for field in numbers:
    expect(isinstance(report.get(field), (int, float)), f"{field} is not a number")
expect(report["onnx_nonconstant_nodes"] <= report["onnx_nodes"], "more non-Constant nodes than nodes")
expect(sum(report["ops_by_kind"].values()) == report["ir_ops_final"],
       "ops_by_kind does not sum to ir_ops_final")

passes = report["passes"]
expect([p["name"] for p in passes] == report["pipeline"].split(","), "passes do not follow the pipeline")
ops = report["ir_ops_initial"]
for p in passes:
    for key in ["name", "ms", "ops_before", "ops_after", "changed", "stats"]:
        expect(key in p, f"pass entry without {key}: {p}")
    expect(p["ops_before"] == ops, f"pass {p['name']} starts at {p['ops_before']} ops, expected {ops}")
    expect(p["ms"] >= 0, f"pass {p['name']} has a negative time")
    expect(isinstance(p["stats"], dict), f"pass {p['name']} stats is not an object")
    ops = p["ops_after"]
expect(ops == report["ir_ops_final"], "the last pass does not end at ir_ops_final")
expect(report["compile_ms"] >= report["pipeline_ms"], "compile_ms is below pipeline_ms")

cost = report["cost_model"]
unfused, fused = cost["unfused"]["seconds"], cost["fused"]["seconds"]
expect(abs(report["fusion_gain_ratio"] - unfused / fused) <= 1e-4 * unfused / fused,
       "fusion_gain_ratio is not unfused/fused")

memory = report["memory"]
if memory is not None:
    for field in ["peak_bytes", "naive_bytes", "lower_bound_bytes", "buffers", "registers"]:
        expect(isinstance(memory.get(field), int) and memory[field] >= 0, f"memory.{field} is not a count")
    expect(memory["lower_bound_bytes"] <= memory["peak_bytes"] <= memory["naive_bytes"],
           "memory: not lower_bound_bytes <= peak_bytes <= naive_bytes")
    expect(memory["buffers"] <= memory["registers"], "memory: more buffers than registers")
    expect(memory["peak_bytes"] % 64 == 0, "memory: peak_bytes is not a multiple of 64")
    expect(all(isinstance(v, int) for v in memory["bounds"].values()), "memory: a bound is not an integer")

weights = report["weights"]
expect(weights["mode"] in ("embed", "reference"), "weights.mode is not embed or reference")
for field in ["embedded_count", "embedded_bytes", "referenced_count", "referenced_bytes", "unaligned_count",
              "unaligned_bytes"]:
    expect(isinstance(weights.get(field), int) and weights[field] >= 0, f"weights.{field} is not a count")
expect(weights["unaligned_count"] <= weights["referenced_count"], "weights: more unaligned than referenced")
expect(weights["unaligned_bytes"] <= weights["referenced_bytes"], "weights: more unaligned bytes than referenced")
expect((weights["referenced_count"] == 0) == (len(weights["files"]) == 0),
       "weights: referenced weights without files, or files without referenced weights")
expect(weights["mode"] == "reference" or weights["referenced_count"] == 0, "weights: embed mode referenced some")

if errors:
    print("\n".join(errors))
    sys.exit(1)
print("report ok")
