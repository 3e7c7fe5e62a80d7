#!/usr/bin/env python3
"""Accuracy side by side: kiln's and ONNX Runtime's max abs difference from
each model's float64 reference outputs, per data set and output.

usage: bench/fidelity.py [--kiln BUILD/tools/kiln] [--peer-python PY] MODEL_DIR...
MODEL_DIR holds model.onnx and test_data_set_K/ (ONNX backend-test layout).
Defaults: the kiln in ./build, the peer python that ../shared/peer/setup.sh
prints. Both differences are computed the same way (float64 of the float32
outputs against the reference, as peer.py does), kiln's from the output files
`kiln run --output-dir` writes, read with the peer python's numpy and onnx.
Exit 1 when kiln's difference is larger than ONNX Runtime's anywhere.
Needs stdlib python; the peer python comes from ../shared/peer/setup.sh.
"""
import argparse, glob, json, os, re, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peer_python():
    """The peers' python, installed by ../shared/peer/setup.sh (a venv from PyPI) when missing."""
    setup = os.path.join(ROOT, "..", "shared", "peer", "setup.sh")
    done = subprocess.run(["bash", setup], capture_output=True, text=True)
    found = re.search(r"PEER_PY=(\S+)", done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"bash {setup} could not install ONNX Runtime and OpenVINO (exit {done.returncode}; it "
                 f"needs python3-venv: scripts/install-deps --bench):\n{done.stderr}")
    return found.group(1)


DIFF_SCRIPT = """
import glob, json, os, sys
import numpy as np, onnx
from onnx import numpy_helper
def load(d, prefix):
    files = sorted(glob.glob(os.path.join(d, prefix + "_*.pb")), key=lambda f: int(f.rsplit("_", 1)[1][:-3]))
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in files]
ref, out = load(sys.argv[1], "output"), load(sys.argv[2], "output")
print(json.dumps([float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)))) for r, o in zip(ref, out)]))
"""


def kiln_diffs(kiln, py, artifact, data_dir, out_dir):
    run = subprocess.run([kiln, "run", artifact, "--input-dir", data_dir, "--output-dir", out_dir],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"kiln run failed on {data_dir}:\n{run.stdout}{run.stderr}")
    return json.loads(subprocess.run([py, "-c", DIFF_SCRIPT, data_dir, out_dir], check=True,
                                     capture_output=True, text=True).stdout)


def ort_diffs(py, model_dir, data_set):
    peer = os.path.join(ROOT, "..", "shared", "peer", "peer.py")
    out = subprocess.run([py, peer, model_dir, "--iters", "1", "--warmup", "0", "--data-set", str(data_set)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])["max_abs_diff"]
    return [result[f"output_{i}"] for i in range(len(result))]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--kiln", default=os.path.join(ROOT, "build", "tools", "kiln"))
    p.add_argument("--peer-python")
    a = p.parse_args()
    py = a.peer_python or peer_python()
    worse = 0
    print(f"{'model':<22} {'set':>3} {'output':>6} {'kiln':>10} {'onnxruntime':>12}  kiln<=ort")
    with tempfile.TemporaryDirectory() as tmp:
        for model_dir in a.models:
            name = os.path.basename(os.path.normpath(model_dir))
            artifact = os.path.join(tmp, name + ".kiln")
            subprocess.run([a.kiln, "compile", os.path.join(model_dir, "model.onnx"), "-o", artifact],
                           check=True, capture_output=True)
            for data_dir in sorted(glob.glob(os.path.join(model_dir, "test_data_set_*"))):
                k = int(data_dir.rsplit("_", 1)[1])
                out_dir = os.path.join(tmp, f"{name}-{k}")
                for i, (mine, theirs) in enumerate(zip(kiln_diffs(a.kiln, py, artifact, data_dir, out_dir),
                                                       ort_diffs(py, model_dir, k))):
                    ok = mine <= theirs
                    worse += not ok
                    print(f"{name:<22} {k:>3} {i:>6} {mine:>10.3e} {theirs:>12.3e}  {'yes' if ok else 'NO'}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
