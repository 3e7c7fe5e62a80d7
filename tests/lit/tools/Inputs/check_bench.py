"""Checks a `kiln bench` output: exactly one line, a JSON object with every
documented field and its type, the counts the command line asked for
(argv[2:]: iters warmup threads), and latencies that agree (min <= median,
min <= mean, all > 0)."""
import json
import sys

lines = open(sys.argv[1]).read().splitlines()
iters, warmup, threads = (int(x) for x in sys.argv[2:5])
errors = []


def expect(condition, message):
    if not condition:
        errors.append(message)


expect(len(lines) == 1, f"{len(lines)} lines, not one")
bench = json.loads(lines[0])
for field in ["model", "input"]:
    expect(isinstance(bench.get(field), str), f"{field} is not a string")
for field, wanted in [("iters", iters), ("warmup", warmup), ("threads", threads)]:
    expect(bench.get(field) == wanted, f"{field} is {bench.get(field)}, not {wanted}")
for field in ["load_ms", "latency_ms_median", "latency_ms_min", "latency_ms_mean"]:
    expect(isinstance(bench.get(field), (int, float)) and bench[field] > 0, f"{field} is not a positive number")
if not errors:
    expect(bench["latency_ms_min"] <= bench["latency_ms_median"], "min above the median")
    expect(bench["latency_ms_min"] <= bench["latency_ms_mean"], "min above the mean")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("bench ok")
