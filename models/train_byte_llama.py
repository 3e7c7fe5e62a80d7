#!/usr/bin/python3
"""A small grouped-query-attention Llama over bytes, trained on real text.

Compressing a KV cache (multi-head latent attention, TransMLA-style) can only be
judged on a model that has learned something: random weights say nothing about
the quality lost. This script trains a byte-level Llama (vocabulary 256, 4
layers, width 256, 8 query heads, 2 kv heads of dim 32, rotate-half RoPE,
RMSNorm, SwiGLU 512, no biases, untied lm_head) on the Python standard library
sources for a fixed wall budget, then exports it as ../shared/models/gen.py
exports its llama decode preset: the same attention spelling (q/k/v Linear,
rotate-half RoPE, torch.cat KV cache, repeat_kv expand, additive Where-based
causal mask), so kiln's attention fusion recognises the exported graph.

Data: /usr/lib/python3.11/*.py (top level, sorted by name) as UTF-8 bytes. Files
with index % 10 == 0 are held out, the rest are training text; the first
held-out files (sorted order, whole files, up to ~200 KB) ship as heldout.txt,
and every held-out measurement is taken from that text.

usage: /usr/bin/python3 models/train_byte_llama.py [--minutes 8] [--out models/byte-llama]
Writes OUT/model.onnx (weights inside; inputs input_ids, past_key_values.N.key,
past_key_values.N.value; outputs logits, present.N.key, present.N.value; the
decode graph, which also serves prefill with past_sequence = 0), OUT/heldout.txt,
OUT/README.md, and data sets in the ONNX backend-test layout (input_K.pb /
output_K.pb, TensorProto, i64 input_ids, f32 tensors; references computed by
torch in float64, stored as float32):
  OUT/test_data_set_0   1 x 16 held-out bytes, empty past; all outputs
  OUT/test_data_set_1   1 held-out byte after a past of the model's own presents
                        for the 15 bytes before it; all outputs
  OUT/calibration/set_{0..7}  1 x 256 training bytes, empty past; inputs only
  OUT/evaluation/set_{0..7}   1 x 256 held-out bytes, empty past; output_0 (logits)
Needs: torch (Debian: python3-torch), onnx (Debian: python3-onnx), numpy, and the
Python 3.11 standard library sources in /usr/lib/python3.11. Training is float32
on 2 CPU threads; the result depends on how many steps fit in the budget.
"""
import argparse
import glob
import math
import os
import sys
import time

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from onnx import numpy_helper
except ImportError as missing:
    sys.exit(f"models/train_byte_llama.py needs torch, onnx and numpy ({missing.name} is missing): "
             "install python3-torch python3-onnx python3-numpy, then run it with /usr/bin/python3")

CONFIG = dict(vocab=256, dim=256, layers=4, heads=8, kv_heads=2, ffn=512, rope_theta=10000.0, eps=1e-5)
HEAD_DIM = CONFIG["dim"] // CONFIG["heads"]
SOURCE_GLOB = "/usr/lib/python3.11/*.py"
HELDOUT_CAP = 200_000
OPSET = 17


# ---- the model: gen.py's Llama, spelled the same way --------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, d, eps=CONFIG["eps"]):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv, self.dh = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
        self.q_proj = nn.Linear(c["dim"], self.h * self.dh, bias=False)
        self.k_proj = nn.Linear(c["dim"], self.kv * self.dh, bias=False)
        self.v_proj = nn.Linear(c["dim"], self.kv * self.dh, bias=False)
        self.o_proj = nn.Linear(self.h * self.dh, c["dim"], bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.dh).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        rep = self.h // self.kv
        if rep > 1:  # repeat_kv, as exported models spell it
            n = k.shape[2]
            k = k[:, :, None, :, :].expand(b, self.kv, rep, n, self.dh).reshape(b, self.h, n, self.dh)
            v = v[:, :, None, :, :].expand(b, self.kv, rep, n, self.dh).reshape(b, self.h, n, self.dh)
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.dh)
        att = att + mask
        # gen.py writes softmax(att.float()).to(q.dtype); on a float32 model both casts are
        # no-ops and export nothing, and leaving them out keeps the float64 references float64
        att = F.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, self.h * self.dh)
        return self.o_proj(y), present


class LlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["dim"])
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c["dim"])
        self.gate_proj = nn.Linear(c["dim"], c["ffn"], bias=False)
        self.up_proj = nn.Linear(c["dim"], c["ffn"], bias=False)
        self.down_proj = nn.Linear(c["ffn"], c["dim"], bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)), present


class ByteLlama(nn.Module):
    """forward(input_ids) -> logits (training); forward(input_ids, *pasts) -> (logits, *presents)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["dim"])
        self.layers = nn.ModuleList([LlamaBlock(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["dim"])
        self.lm_head = nn.Linear(c["dim"], c["vocab"], bias=False)
        dh = c["dim"] // c["heads"]
        self.register_buffer("inv_freq", 1.0 / (c["rope_theta"] ** (torch.arange(0, dh, 2).float() / dh)))

    def rope(self, pos):
        f = pos[:, :, None].float() * self.inv_freq[None, None, :]
        e = torch.cat((f, f), dim=-1)
        return e.cos()[:, None], e.sin()[:, None]

    def forward(self, input_ids, *past_flat):
        b, t = input_ids.shape
        p = past_flat[0].shape[2] if past_flat else 0
        pos = torch.arange(p, p + t, device=input_ids.device)[None, :].expand(b, t)
        cos, sin = self.rope(pos)
        i = torch.arange(t)[:, None] + p
        j = torch.arange(p + t)[None, :]
        mask = torch.where(j > i, torch.tensor(torch.finfo(torch.float32).min), torch.tensor(0.0))[None, None]
        x = self.embed_tokens(input_ids)
        presents = []
        for li, layer in enumerate(self.layers):
            past = (past_flat[2 * li], past_flat[2 * li + 1]) if past_flat else None
            x, pr = layer(x, cos, sin, mask, past)
            presents += list(pr)
        logits = self.lm_head(self.norm(x))
        return (logits, *presents) if past_flat else logits


def init_weights(model):
    """GPT-2 style: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers)."""
    resid = 0.02 / math.sqrt(2 * model.c["layers"])
    for name, p in model.named_parameters():
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, resid if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02)


# ---- data ---------------------------------------------------------------------------------

def load_split():
    files = sorted(glob.glob(SOURCE_GLOB), key=os.path.basename)
    if not files:
        sys.exit(f"no files match {SOURCE_GLOB}")
    train, held = [], []
    for idx, path in enumerate(files):
        with open(path, "rb") as f:
            (held if idx % 10 == 0 else train).append((os.path.basename(path), f.read()))
    shipped, size = [], 0
    for name, data in held:
        if size + len(data) > HELDOUT_CAP:
            break
        shipped.append((name, data))
        size += len(data)
    return files, train, held, shipped


def windows(text, n, length, seed):
    """n fixed windows of `length` bytes at seeded positions, as an i64 [n, length] tensor."""
    starts = np.random.RandomState(seed).randint(0, len(text) - length, size=n)
    return torch.from_numpy(np.stack([np.frombuffer(text, dtype=np.uint8, count=length, offset=int(s))
                                      for s in starts]).astype(np.int64)), starts


def next_byte_loss(model, ids):
    """Mean cross entropy (nats/byte) of predicting ids[:, 1:] from ids[:, :-1]."""
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


# ---- data sets ----------------------------------------------------------------------------

def input_names(c):
    names = [f"past_key_values.{i // 2}.{'key' if i % 2 == 0 else 'value'}" for i in range(2 * c["layers"])]
    return ["input_ids"] + names


def output_names(c):
    return ["logits"] + [n.replace("past_key_values", "present") for n in input_names(c)[1:]]


def empty_pasts(c, batch):
    return [torch.zeros(batch, c["kv_heads"], 0, HEAD_DIM) for _ in range(2 * c["layers"])]


def save_set(d, args, ins, refs=(), outs=()):
    os.makedirs(d, exist_ok=True)
    for k, a in enumerate(args):
        a = a if a.dtype == torch.int64 else a.float()
        onnx.save_tensor(numpy_helper.from_array(a.numpy(), ins[k]), os.path.join(d, f"input_{k}.pb"))
    for k, r in enumerate(refs):
        onnx.save_tensor(numpy_helper.from_array(r.float().numpy(), outs[k]), os.path.join(d, f"output_{k}.pb"))


def reference(m64, args):
    """float64 outputs of the model on float32-stored inputs (what a runtime reads back)."""
    return m64(*[a.float().double() if a.is_floating_point() else a for a in args])


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="training wall budget (default 8)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "byte-llama"))
    ap.add_argument("--batch", type=int, default=8, help="windows per step (default 8)")
    ap.add_argument("--seq", type=int, default=256, help="window length in bytes (default 256)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default 3e-3)")
    ap.add_argument("--warmup", type=int, default=30, help="linear warmup steps (default 30)")
    args = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    np.random.seed(0)
    c, out = CONFIG, args.out
    os.makedirs(out, exist_ok=True)

    files, train, held, shipped = load_split()
    train_text = b"".join(d for _, d in train)
    held_text = b"".join(d for _, d in shipped)
    with open(os.path.join(out, "heldout.txt"), "wb") as f:
        f.write(held_text)
    print(f"{len(files)} files: {len(train)} train ({len(train_text)} bytes), {len(held)} held out; "
          f"heldout.txt: {len(shipped)} files, {len(held_text)} bytes", flush=True)
    train_arr = torch.from_numpy(np.frombuffer(train_text, dtype=np.uint8).astype(np.int64))
    held_sample, _ = windows(held_text, 32, args.seq + 1, seed=1)

    model = ByteLlama(c)
    init_weights(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters", flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    budget = args.minutes * 60.0
    t0 = time.time()
    step, window_loss, window_n, recent = 0, 0.0, 0, []
    model.train()
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        # warmup by steps, then cosine to 10% over the wall budget
        frac = min(elapsed / budget, 1.0)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_arr) - args.seq - 1, (args.batch,), generator=gen)
        batch = torch.stack([train_arr[s:s + args.seq + 1] for s in starts.tolist()])
        loss = next_byte_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        window_loss += loss.item()
        window_n += 1
        recent.append(loss.item())
        recent = recent[-50:]
        if step % 50 == 0:
            print(f"step {step:5d}  train loss {window_loss / window_n:.4f}  lr {lr:.2e}  "
                  f"{time.time() - t0:6.1f}s", flush=True)
            window_loss, window_n = 0.0, 0
    train_secs = time.time() - t0
    train_loss = sum(recent) / len(recent)

    model.eval()
    with torch.no_grad():
        held_loss = sum(next_byte_loss(model, held_sample[i:i + 8]).item() for i in range(0, 32, 8)) / 4
    print(f"done: {step} steps in {train_secs:.0f}s; train loss (last {len(recent)} steps) {train_loss:.4f}; "
          f"held-out loss {held_loss:.4f} nats/byte, perplexity {math.exp(held_loss):.3f} per byte "
          f"({held_loss / math.log(2):.3f} bits/byte)", flush=True)

    # ---- export: gen.py's decode variant ----
    ins, outs = input_names(c), output_names(c)
    test_off = held_text.index(b"def getOptionalRelease")  # code in __future__.py
    seq16 = torch.tensor(list(held_text[test_off:test_off + 16]), dtype=torch.int64)[None]
    with torch.no_grad():
        m64 = ByteLlama(c)
        m64.load_state_dict(model.state_dict())
        m64 = m64.double().eval()
        # the model's own presents for the 15 bytes before the new one, as test_data_set_1's past
        past15 = list(reference(m64, (seq16[:, :15], *empty_pasts(c, 1)))[1:])
        past15 = [p.float() for p in past15]
        example = (seq16[:, 15:], *past15)
        dyn = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        dyn.update({n: {0: "batch", 2: "past_sequence"} for n in ins[1:]})
        dyn.update({n: {0: "batch", 2: "total_sequence"} for n in outs[1:]})
        path = os.path.join(out, "model.onnx")
        torch.onnx.export(model, example, path, input_names=ins, output_names=outs, opset_version=OPSET,
                          do_constant_folding=True, dynamic_axes=dyn)
        onnx.checker.check_model(path)

        set0 = (seq16, *empty_pasts(c, 1))
        save_set(os.path.join(out, "test_data_set_0"), set0, ins, reference(m64, set0), outs)
        save_set(os.path.join(out, "test_data_set_1"), example, ins, reference(m64, example), outs)

        cal, cal_starts = windows(train_text, 8, 256, seed=2)
        for k in range(8):
            save_set(os.path.join(out, "calibration", f"set_{k}"), (cal[k:k + 1], *empty_pasts(c, 1)), ins)
        ev, ev_starts = windows(held_text, 8, 256, seed=3)
        ev_losses = []
        for k in range(8):
            a = (ev[k:k + 1], *empty_pasts(c, 1))
            logits = reference(m64, a)[0]
            save_set(os.path.join(out, "evaluation", f"set_{k}"), a, ins, (logits,), outs)
            ev_losses.append(F.cross_entropy(logits[0, :-1], ev[k, 1:]).item())
    ev_loss = sum(ev_losses) / len(ev_losses)
    total_secs = time.time() - t_start
    print(f"evaluation sets: float64 loss {ev_loss:.4f} nats/byte, perplexity {math.exp(ev_loss):.3f}", flush=True)

    mb = os.path.getsize(path) / 1e6
    readme = f"""# byte-llama: a small trained GQA Llama over bytes

Written by `models/train_byte_llama.py`; regenerate with the command below (the
result depends on how many steps fit in the wall budget, so it is not
bit-reproducible across machines). Its purpose: a model that has actually learned
something, so that compressing its KV cache (multi-head latent attention,
TransMLA-style) can be measured for quality loss; random weights cannot show that.

## Model

Llama-style decoder over raw bytes: vocabulary 256, 4 layers, width 256, 8 query
heads and 2 kv heads (head dim 32, grouped-query attention), rotate-half RoPE
(theta 10000), RMSNorm (eps 1e-5), SwiGLU MLP (intermediate 512), no biases,
untied lm_head; {n_params} parameters. Its attention, RoPE and causal mask are
spelled as in `../shared/models/gen.py`'s llama presets, so kiln fuses one
`attention` op per layer.

`model.onnx` ({mb:.1f} MB, weights inside, opset {OPSET}) is the decode graph of
gen.py's `*-decode` presets: inputs `input_ids` (i64 [batch, sequence]),
`past_key_values.N.key` / `.value` (f32 [batch, 2, past_sequence, 32], N = 0..3);
outputs `logits` (f32 [batch, sequence, 256]), `present.N.key` / `.value`
(f32 [batch, 2, total_sequence, 32]). It serves prefill too: pass empty pasts
(past_sequence = 0).

## Training

    /usr/bin/python3 models/train_byte_llama.py {' '.join(sys.argv[1:])}

Text: `/usr/lib/python3.11/*.py` (top level, sorted by name), as UTF-8 bytes.
Split by file: file index % 10 == 0 (sorted order) is held out ({len(held)} files),
the other {len(train)} files ({len(train_text)} bytes) are training text. `heldout.txt`
is the first held-out files in sorted order, whole, up to ~200 KB
({len(shipped)} files, {len(held_text)} bytes: {', '.join(n for n, _ in shipped)});
every held-out figure below is measured on it.

float32 on 2 CPU threads, seed 0; AdamW (betas 0.9/0.95, weight decay 0.1 on
matrices), peak lr {args.lr:g}, {args.warmup}-step linear warmup, cosine to 10% over
the wall budget, gradient clip 1.0; batches of {args.batch} random {args.seq}-byte windows.
Budget {args.minutes:g} min: {step} steps in {train_secs:.0f} s; the whole run took {total_secs:.0f} s.

| | nats/byte | perplexity/byte | bits/byte |
|---|---|---|---|
| train (mean of the last {len(recent)} steps) | {train_loss:.4f} | {math.exp(train_loss):.3f} | {train_loss / math.log(2):.3f} |
| held-out (32 windows of 257 bytes, seed 1) | {held_loss:.4f} | {math.exp(held_loss):.3f} | {held_loss / math.log(2):.3f} |
| evaluation sets (float64, below) | {ev_loss:.4f} | {math.exp(ev_loss):.3f} | {ev_loss / math.log(2):.3f} |
| uniform | {math.log(256):.4f} | 256 | 8 |

## Data sets

All in the ONNX backend-test layout (`input_K.pb` / `output_K.pb`, one TensorProto
each, named after the graph inputs / outputs, K in graph order; `input_0` is i64
`input_ids`, `input_1..8` the f32 pasts in the order key 0, value 0, key 1, ...).
References are computed by torch in float64 and stored as float32.

- `test_data_set_0`: 1 x 16 held-out bytes (`heldout.txt` offset {test_off}, `{held_text[test_off:test_off + 16].decode()}`), empty
  pasts [1, 2, 0, 32]; all 9 outputs. `kiln run --check` it.
- `test_data_set_1`: the 16th of those bytes alone, after a past of 15: the
  model's own presents for the 15 bytes before it (float64, stored as f32), so
  the cache is realistic; all 9 outputs. Its logits equal set 0's last row.
- `calibration/set_{{0..7}}`: 1 x 256 bytes of training text (windows at seeded
  positions, seed 2), empty pasts; inputs only. For fitting a compression
  (e.g. the low-rank factors of a latent KV cache) on in-distribution data.
- `evaluation/set_{{0..7}}`: 1 x 256 held-out bytes (`heldout.txt`, seed 3),
  empty pasts; `output_0.pb` is the float64 reference `logits` [1, 256, 256]
  (no presents). Compare a compressed model's logits with it (KL per position),
  or score next-byte loss: logits row i predicts byte i + 1 of `input_0`,
  255 predictions per set; the unconverted model's loss is in the table above.
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme)
    print(f"wrote {out} ({mb:.1f} MB model) in {total_secs:.0f}s", flush=True)


if __name__ == "__main__":
    main()
