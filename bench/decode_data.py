#!/usr/bin/env python3
"""Writes a decode data set with a chosen past length for a decoder model dir.

usage: decode_data.py MODEL_DIR PAST [--set K] [--seed S]
Reads MODEL_DIR/test_data_set_0 (one step's input_ids and the past keys and
values) and writes MODEL_DIR/test_data_set_K (default K = 2) with the same
input_ids and random past keys and values of PAST tokens (0.5 * N(0, 1), as
../shared/models/gen.py makes them). Inputs only: no reference outputs, so
the set is for timing (kiln bench --decode, peer.py), not for accuracy.
Needs numpy and onnx (the peer python of ../shared/peer/setup.sh has both).
"""
import argparse, glob, os, sys
try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as missing:
    sys.exit(f"bench/decode_data.py needs numpy and onnx ({missing.name} is missing): run it with the "
             "peer python that `bash ../shared/peer/setup.sh` installs and prints, or with /usr/bin/python3 "
             "after scripts/install-deps")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir"); p.add_argument("past", type=int)
    p.add_argument("--set", type=int, default=2); p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    src = os.path.join(a.model_dir, "test_data_set_0")
    dst = os.path.join(a.model_dir, f"test_data_set_{a.set}")
    os.makedirs(dst, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    files = sorted(glob.glob(os.path.join(src, "input_*.pb")), key=lambda f: int(f.rsplit("_", 1)[1][:-3]))
    for f in files:
        t = onnx.load_tensor(f)
        x = numpy_helper.to_array(t)
        if t.name.startswith("past"):  # [batch, kv_heads, past, head_dim]
            shape = list(x.shape); shape[2] = a.past
            x = (0.5 * rng.standard_normal(shape)).astype(x.dtype)
        onnx.save_tensor(numpy_helper.from_array(x, t.name), os.path.join(dst, os.path.basename(f)))
    print(dst, f"past {a.past}")


if __name__ == "__main__":
    main()
