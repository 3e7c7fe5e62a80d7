#!/usr/bin/python3
"""A data set in the layout of a model compiled with --latent-attention exact
(docs/latent-attention.md): each KV pair becomes the layer's latent rows.

usage: latent_data_set.py DATA_SET ORIGINAL_OUTPUTS OUT_DIR --rope half|none
DATA_SET holds the model's inputs (input_K.pb), ORIGINAL_OUTPUTS the original
artifact's outputs on them (output_K.pb, from `kiln run --output-dir`).
Writes OUT_DIR/input_K.pb and output_K.pb with every pair of consecutive
tensors named ...key and ...value ([B, G, P, d] each) replaced by one
[B, 1, P, 2 G d] tensor named ...latent: per token, with rotate-half RoPE,
the value heads, then the first element of every key head's RoPE pairs, then
the second; without RoPE, the key heads then the value heads.
Needs: numpy and onnx (Debian: python3-numpy python3-onnx).
"""
import glob
import os
import sys

import numpy as np
from onnx import TensorProto, numpy_helper


def read(path):
    tensor = TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return tensor.name, numpy_helper.to_array(tensor)


def latent_rows(keys, values, rope):
    """[B, G, P, d] keys and values -> [B, 1, P, 2 G d] latent rows."""
    batch, heads, length, dim = keys.shape
    per_token = lambda x: x.transpose(0, 2, 1, 3)  # [B, P, G, d]
    k, v = per_token(keys), per_token(values)
    flat = lambda x: x.reshape(batch, length, x.shape[2] * x.shape[3])  # explicit: length may be 0
    if rope == "half":
        half = dim // 2
        parts = [flat(v), flat(k[..., :half]), flat(k[..., half:])]
    else:
        parts = [flat(k), flat(v)]
    return np.concatenate(parts, axis=-1)[:, None]


def convert(tensors, rope):
    """(name, array) list with each key/value pair folded into a latent one."""
    out, i = [], 0
    while i < len(tensors):
        name, array = tensors[i]
        if i + 1 < len(tensors) and name.endswith("key") and tensors[i + 1][0] == name[:-3] + "value":
            out.append((name[:-3] + "latent", latent_rows(array, tensors[i + 1][1], rope)))
            i += 2
        else:
            out.append((name, array))
            i += 1
    return out


def write(tensors, out_dir, prefix):
    for k, (name, array) in enumerate(tensors):
        with open(os.path.join(out_dir, f"{prefix}_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())


def main(argv):
    if len(argv) != 5 or argv[3] != "--rope" or argv[4] not in ("half", "none"):
        sys.exit(__doc__)
    data_set, original, out_dir, rope = argv[0], argv[1], argv[2], argv[4]
    ordered = lambda folder, prefix: sorted(glob.glob(os.path.join(folder, f"{prefix}_*.pb")),
                                            key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
    os.makedirs(out_dir, exist_ok=True)
    write(convert([read(p) for p in ordered(data_set, "input")], rope), out_dir, "input")
    write(convert([read(p) for p in ordered(original, "output")], rope), out_dir, "output")


if __name__ == "__main__":
    main(sys.argv[1:])
