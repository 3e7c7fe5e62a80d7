"""Checks a `kiln devices --json` output: one object {"devices": [...]}, each
device with a name, a memory space, a boolean `available` and either string
properties (available) or the reason it is not (`unavailable`). Prints one
line per device, `NAME memory=SPACE available` or `NAME memory=SPACE
unavailable`, for FileCheck."""
import json
import sys

devices = json.load(open(sys.argv[1]))["devices"]
errors = []
for device in devices:
    name = device.get("name")
    if not isinstance(name, str) or not isinstance(device.get("memory"), str):
        errors.append(f"{device}: no name or memory")
        continue
    if device.get("available") is True:
        properties = device.get("properties")
        if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
            errors.append(f"{name}: properties are not an object of strings")
    elif device.get("available") is False:
        if not isinstance(device.get("unavailable"), str) or not device["unavailable"]:
            errors.append(f"{name}: unavailable without a reason")
    else:
        errors.append(f"{name}: 'available' is not a boolean")
if errors:
    print("\n".join(errors))
    sys.exit(1)
for device in devices:
    print(f"{device['name']} memory={device['memory']} {'available' if device['available'] else 'unavailable'}")
