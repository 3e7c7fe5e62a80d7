"""Checks a device profile written by `kiln calibrate`: argv[1] the profile,
argv[2] its device, argv[3] its name, argv[4] the command's output. Every
documented field with its type, rates > 0, non-negative link and memory.
Prints `profile ok: NAME for DEVICE`; when no profile was written, `no
profile: ` and the command's first output line (why)."""
import json
import os
import sys

path, device, name, output = sys.argv[1:5]
if not os.path.exists(path) or os.path.getsize(path) == 0:
    print("no profile: " + open(output).readline().strip())
    sys.exit(0)
profile = json.load(open(path))
errors = []


def expect(condition, message):
    if not condition:
        errors.append(message)


expect(profile.get("device") == device, f"device is {profile.get('device')}, not {device}")
expect(profile.get("name") == name, f"name is {profile.get('name')}, not {name}")
expect(isinstance(profile.get("summary"), str), "summary is not a string")
for field in ["ops", "dtypes"]:
    value = profile.get(field)
    expect(value == "all" or (isinstance(value, list) and value), f"{field} is neither 'all' nor a list")
expect(profile.get("static_shapes") is False, "static_shapes is not false")
for field in ["matmul_gflops", "vector_gflops", "bandwidth_gbs", "launch_us"]:
    expect(isinstance(profile.get(field), (int, float)) and profile[field] > 0, f"{field} is not > 0")
expect(isinstance(profile.get("memory_mb"), (int, float)) and profile["memory_mb"] >= 0, "memory_mb < 0")
link = profile.get("host_link", {})
for field in ["bandwidth_gbs", "latency_us"]:
    expect(isinstance(link.get(field), (int, float)) and link[field] >= 0, f"host_link.{field} < 0")
if device != "cpu":
    expect(profile["memory_mb"] > 0 and link["bandwidth_gbs"] > 0, "no memory or no host link measured")
    expect("transfer" in profile["ops"], "the device does not list transfer")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"profile ok: {name} for {device}")
