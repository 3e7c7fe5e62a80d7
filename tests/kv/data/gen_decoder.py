# Writes decoder.kir, the test decoder of tests/kv (see its header comment):
#   /usr/bin/python3 gen_decoder.py [OUT.kir]
import random, sys
seed = 6
out = sys.argv[1] if len(sys.argv) > 1 else "decoder.kir"
rng = random.Random(seed)
V, D, H, HKV, HD = 16, 8, 2, 1, 4
W = (H + 2*HKV) * HD
def vals(n, scale):
    return "[" + ", ".join(f"{rng.uniform(-scale, scale):.4f}" for _ in range(n)) + "]"
lines = []
lines.append("// A two-layer decoder in the shape of an exported Llama after kiln's default")
lines.append("// pipeline: per layer rms_norm, packed q|k|v projection, one attention op with")
lines.append("// past_k/past_v graph inputs and present_k/present_v graph outputs (the KV")
lines.append("// pairs), and the output projection with the residual. Weights are fixed")
lines.append(f"// pseudo-random values (Python random.Random({seed}), uniform).")
ins = ["%input_ids: i64[batch, seq]"]
outs = [f"%logits: f32[batch, seq, {V}]"]
for l in range(2):
    for kv in ("key", "value"):
        ins.append(f"%past.{l}.{kv}: f32[batch, {HKV}, past, {HD}]")
        outs.append(f"%present.{l}.{kv}: f32[batch, {HKV}, past + seq, {HD}]")
lines.append(f"graph @decoder({', '.join(ins)}) -> ({', '.join(outs)}) {{")
lines.append(f"  weight @embed : f32[{V}, {D}] = {vals(V*D, 1.0)}")
lines.append(f"  weight @inv_freq : f32[{HD//2}] = [1.0, 0.01]")
for l in range(2):
    lines.append(f"  weight @norm.{l} : f32[{D}] = {vals(D, 0.5)}")
    lines.append(f"  weight @qkv.{l} : f32[{D}, {W}] = {vals(D*W, 0.8)}")
    lines.append(f"  weight @out.{l} : f32[{D}, {D}] = {vals(D*D, 0.5)}")
lines.append(f"  weight @lm_head : f32[{D}, {V}] = {vals(D*V, 1.0)}")
lines.append(f"  %x0 = gather @embed, %input_ids {{axis = 0}} : f32[batch, seq, {D}]")
for l in range(2):
    lines.append(f"  %h{l} = rms_norm %x{l}, @norm.{l} {{axis = -1, epsilon = 1e-05}} : f32[batch, seq, {D}]")
    lines.append(f"  %qkv{l} = matmul %h{l}, @qkv.{l} : f32[batch, seq, {W}]")
    lines.append(f"  %a{l}, %present.{l}.key, %present.{l}.value = attention %qkv{l}, _, _, _, _, _, %past.{l}.key, %past.{l}.value, @inv_freq {{causal = true, heads = {H}, kv_heads = {HKV}, out_layout = \"bsd\", qkv_layout = \"bsd_packed\", rope = \"half\", scale = 0.5}} : f32[batch, seq, {H*HD}], f32[batch, {HKV}, past + seq, {HD}], f32[batch, {HKV}, past + seq, {HD}]")
    lines.append(f"  %x{l+1} = matmul %a{l}, @out.{l}, _, %x{l} : f32[batch, seq, {D}]")
lines.append(f"  %logits = matmul %x2, @lm_head : f32[batch, seq, {V}]")
lines.append("  return %logits, " + ", ".join(f"%present.{l}.{kv}" for l in range(2) for kv in ("key", "value")))
lines.append("}")
open(out, "w").write("\n".join(lines) + "\n")
