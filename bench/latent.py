#!/usr/bin/python3
"""Latent attention, measured (docs/latent-attention.md): for a trained
decoder and several KV-cache compressions, the cache per token, quality
against the unconverted model, and decode latency.

usage: bench/latent.py MODEL_DIR [--kiln BUILD/tools/kiln] [--factors 2,4,8]
                       [--decode-dir DIR] [--pasts 511,4095,16383] [--iters N]
                       [--threads T] [--peer-python PY | --no-peer] [--no-decode] [--no-quality]
Quality, on MODEL_DIR/evaluation/set_K (input_ids [1, T] and empty pasts),
for the original artifact, --latent-attention exact, and compress=F for each
factor both with the weights alone and calibrated on MODEL_DIR/calibration:
KV bytes per token (the compile report), perplexity per token of the
held-out text (next-token targets), the mean KL(original || converted) of
the next-token distribution over positions, and the largest absolute
difference of a next-token probability, and how often the greedy next
token is the unconverted model's.
Decode, on DECODE_DIR (default MODEL_DIR; a llama-bench-sized decoder for
the latency figure): `kiln bench --decode` at each past length, random pasts,
for the original, exact, compress=4 and compress=2 with a bf16 cache (both
4x fewer bytes; calibration changes weights, not speed: weight-only), and
ONNX Runtime on the original (../shared/peer/peer.py
on a data set bench/decode_data.py writes) unless --no-peer.
Prints markdown tables. Needs numpy and onnx (/usr/bin/python3 after
scripts/install-deps).
"""
import argparse, glob, json, os, re, subprocess, sys, tempfile

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))


def run(cmd, what):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return done.stdout


def compile_artifact(a, model_dir, out, flags):
    report = out + ".json"
    run([a.kiln, "compile", os.path.join(model_dir, "model.onnx"), "-o", out, "--report", report] + flags,
        "kiln compile")
    with open(report) as f:
        latent = json.load(f)["latent_attention"]
    return latent


def tensors(folder, prefix):
    files = sorted(glob.glob(os.path.join(folder, f"{prefix}_*.pb")), key=lambda f: int(f.rsplit("_", 1)[1][:-3]))
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in files]


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def artifact_inputs(a, artifact):
    """(name, dtype, dims) of each input, as `kiln inspect` prints them."""
    text = run([a.kiln, "inspect", artifact], "kiln inspect")
    section = text.split("inputs:\n", 1)[1].split("outputs:\n", 1)[0]
    return re.findall(r"^  (\S+): (\w+)\[([^\]]*)\]$", section, re.M)


def evaluate(a, artifact, ids, work):
    """Per token sequence (a prefill from an empty cache): the artifact's logits, float64."""
    out = []
    for k, tokens in enumerate(ids):
        data, folder = os.path.join(work, f"in{k}"), os.path.join(work, f"out{k}")
        os.makedirs(data, exist_ok=True)
        for i, (name, dtype, dims) in enumerate(artifact_inputs(a, artifact)):
            if i == 0:
                tensor = numpy_helper.from_array(tokens[None, :], name)
            else:  # an empty past (a prefill), in the input's dtype
                shape = [int(d) if d.isdigit() else 1 if "batch" in d else 0 for d in dims.split(", ")]
                kind = onnx.TensorProto.BFLOAT16 if dtype == "bf16" else onnx.TensorProto.FLOAT
                tensor = onnx.helper.make_tensor(name, kind, shape, [])
            onnx.save_tensor(tensor, os.path.join(data, f"input_{i}.pb"))
        run([a.kiln, "run", artifact, "--input-dir", data, "--output-dir", folder], "kiln run")
        out.append(tensors(folder, "output")[0].astype(np.float64)[0])
    return out


def quality(ids, logits, reference):
    """Perplexity per token, mean KL(reference || logits), max |p - p_ref|, and the
    share of positions whose greedy next token is the reference's."""
    nll, kl, worst, same = [], [], 0.0, []
    for tokens, mine, theirs in zip(ids, logits, reference):
        p, q = softmax(theirs), softmax(mine)
        targets = tokens[1:]
        nll.extend(-np.log(q[np.arange(len(targets)), targets]))
        kl.extend(np.sum(p * (np.log(np.maximum(p, 1e-300)) - np.log(np.maximum(q, 1e-300))), axis=-1))
        worst = max(worst, float(np.max(np.abs(p - q))))
        same.extend(np.argmax(p, axis=-1) == np.argmax(q, axis=-1))
    return float(np.exp(np.mean(nll))), float(np.mean(kl)), worst, float(np.mean(same))


def quality_table(a, work):
    sets = sorted(glob.glob(os.path.join(a.model_dir, "evaluation", "set_*")))
    if not sets:
        sys.exit(f"{a.model_dir}/evaluation holds no set_K data set")
    ids = [tensors(s, "input")[0][0].astype(np.int64) for s in sets]
    configs = [("original", [])]
    configs.append(("exact", ["--latent-attention", "exact"]))
    for f in a.factors:
        configs.append((f"compress={f:g}, weights only", ["--latent-attention", f"compress={f:g}"]))
        configs.append((f"compress={f:g}, calibrated", ["--latent-attention", f"compress={f:g}", "--calibration-dir",
                                                       os.path.join(a.model_dir, "calibration")]))
    # A bf16 cache halves the bytes again: 2x (4x) fewer values at 4x (8x) fewer bytes.
    for f in (2, 4):
        configs.append((f"compress={f}, calibrated, bf16 cache", ["--latent-attention", f"compress={f},cache=bf16",
                                                                  "--calibration-dir",
                                                                  os.path.join(a.model_dir, "calibration")]))
    rows, reference = [], None
    for name, flags in configs:
        artifact = os.path.join(work, re.sub(r"[^a-z0-9]+", "_", name) + ".kiln")
        latent = compile_artifact(a, a.model_dir, artifact, flags)
        logits = evaluate(a, artifact, ids, artifact[:-len(".kiln")])
        reference = reference or logits
        ppl, kl, worst, same = quality(ids, logits, reference)
        before = latent["kv_bytes_per_token_before"] if latent else None
        after = latent["kv_bytes_per_token_after"] if latent else None
        rows.append((name, after if latent else "-", f"{before / after:.2f}x" if latent else "1x",
                     f"{latent['rank']} + {latent['rope_dims']}" if latent else "-", f"{ppl:.4f}", f"{kl:.2e}",
                     f"{worst:.2e}", f"{100 * same:.1f}%"))
    base = float(rows[0][4])
    print(f"\nquality: {a.model_dir}, {len(sets)} evaluation sets of {ids[0].size} tokens")
    print("| config | KV bytes/token | compression | rank + rope dims | perplexity | change | KL(orig‖conv) mean "
          "| max Δp | same greedy token |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, kv, ratio, dims, ppl, kl, worst, same in rows:
        print(f"| {name} | {kv} | {ratio} | {dims} | {ppl} | {100 * (float(ppl) / base - 1):+.2f}% | {kl} | {worst} "
              f"| {same} |")


def input_shapes(a, artifact, past):
    """--input-shape flags for a decode step of one token after `past` random ones."""
    flags = []
    for name, _, dims in artifact_inputs(a, artifact):
        shape = [d if d.isdigit() else "1" if "batch" in d else str(past) if "past" in d else "1"
                 for d in dims.split(", ")]
        flags += ["--input-shape", f"{name}={'x'.join(shape)}"]
    return flags


def kiln_decode_ms(a, artifact, past):
    out = run([a.kiln, "bench", artifact, "--decode", "--iters", str(a.iters), "--warmup", "3", "--threads",
               str(a.threads)] + input_shapes(a, artifact, past), "kiln bench --decode")
    return json.loads(out.strip().splitlines()[-1])["latency_ms_median"]


def ort_decode_ms(a, past, set_index):
    py = a.peer_python
    run([py, os.path.join(ROOT, "bench", "decode_data.py"), a.decode_dir, str(past), "--set", str(set_index)],
        "bench/decode_data.py")
    try:
        out = run([py, os.path.join(ROOT, "..", "shared", "peer", "peer.py"), a.decode_dir, "--engine", "ort",
                   "--iters", str(a.iters), "--threads", str(a.threads), "--data-set", str(set_index)], "peer.py")
    finally:
        for f in glob.glob(os.path.join(a.decode_dir, f"test_data_set_{set_index}", "*")):
            os.remove(f)
        os.rmdir(os.path.join(a.decode_dir, f"test_data_set_{set_index}"))
    return json.loads(out.strip().splitlines()[-1])["latency_ms_median"]


def decode_table(a, work):
    configs = [("original", []), ("exact", ["--latent-attention", "exact"]),
               ("compress=4", ["--latent-attention", "compress=4"]),
               ("compress=2,cache=bf16", ["--latent-attention", "compress=2,cache=bf16"])]
    artifacts = {}
    for name, flags in configs:
        artifacts[name] = os.path.join(work, "decode_" + re.sub(r"[^a-z0-9]+", "_", name) + ".kiln")
        compile_artifact(a, a.decode_dir, artifacts[name], flags + ["--max-shape", f"past_sequence={max(a.pasts)}"])
    print(f"\ndecode: {a.decode_dir}, one token per step, {a.threads} threads, median of {a.iters} steps (ms)")
    header = "| past | " + " | ".join(f"kiln {n}" for n, _ in configs) + \
             (" | ONNX Runtime original" if a.peer_python else "") + " | original / compress=4 |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for past in a.pasts:
        ms = [kiln_decode_ms(a, artifacts[n], past) for n, _ in configs]
        ort = [f"{ort_decode_ms(a, past, 90):.3f}"] if a.peer_python else []
        print(f"| {past} | " + " | ".join(f"{m:.3f}" for m in ms) + "".join(f" | {o}" for o in ort) +
              f" | {ms[0] / ms[2]:.2f}x |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--kiln", default=os.path.join(ROOT, "build", "tools", "kiln"))
    p.add_argument("--factors", default="2,4,8")
    p.add_argument("--decode-dir")
    p.add_argument("--pasts", default="511,4095,16383")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--peer-python")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--no-decode", action="store_true")
    p.add_argument("--no-quality", action="store_true", help="the decode table only")
    a = p.parse_args()
    a.factors = [float(f) for f in a.factors.split(",")]
    a.pasts = [int(x) for x in a.pasts.split(",")]
    a.decode_dir = a.decode_dir or a.model_dir
    if not a.no_decode and not a.no_peer and not a.peer_python:
        import fidelity
        a.peer_python = fidelity.peer_python()
    if a.no_peer:
        a.peer_python = None
    with tempfile.TemporaryDirectory() as work:
        if not a.no_quality:
            quality_table(a, work)
        if not a.no_decode:
            decode_table(a, work)


if __name__ == "__main__":
    main()
