#!/usr/bin/python3
"""kiln's own sample model: a one-layer transformer encoder, built node by node.

It carries the patterns exporters emit (an embedding Gather, position ids from
a Shape->Gather->Range chain, a Shape->Gather->Unsqueeze->Concat chain feeding
the head Reshapes, an additive attention mask from an i64 mask, GELU in its Erf
form, residuals), so the project's end-to-end tests exercise them without
../shared. Weights are random with a fixed seed; reference outputs are computed
in float64 numpy and stored as float32.

usage: /usr/bin/python3 models/gen_sample.py [OUT_DIR]   (default: models/sample-encoder)
Writes OUT_DIR/model.onnx and OUT_DIR/test_data_set_{0,1}/{input,output}_K.pb in
the ONNX backend-test layout; set 1 has another batch and sequence length than
set 0, so one compiled artifact is checked at two shapes.
Needs: numpy and onnx (Debian: python3-numpy python3-onnx); no torch.
"""
import math
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as missing:
    sys.exit(f"models/gen_sample.py needs numpy and onnx ({missing.name} is missing): "
             "run scripts/install-deps, then /usr/bin/python3 models/gen_sample.py")

OPSET = 17
VOCAB, HIDDEN, HEADS, FFN, MAX_POS = 64, 32, 4, 64, 32
HEAD_DIM = HIDDEN // HEADS
EPS = 1e-5


def make_weights(rng):
    def normal(*shape, scale=0.2):
        return rng.normal(0.0, scale, size=shape)

    return {
        "tok_embed": normal(VOCAB, HIDDEN, scale=0.5),
        "pos_embed": normal(MAX_POS, HIDDEN, scale=0.1),
        "ln1.scale": 1.0 + normal(HIDDEN, scale=0.1),
        "ln1.bias": normal(HIDDEN, scale=0.1),
        "attn.q.weight": normal(HIDDEN, HIDDEN),
        "attn.q.bias": normal(HIDDEN, scale=0.05),
        "attn.k.weight": normal(HIDDEN, HIDDEN),
        "attn.k.bias": normal(HIDDEN, scale=0.05),
        "attn.v.weight": normal(HIDDEN, HIDDEN),
        "attn.v.bias": normal(HIDDEN, scale=0.05),
        "attn.out.weight": normal(HIDDEN, HIDDEN),
        "attn.out.bias": normal(HIDDEN, scale=0.05),
        "ln2.scale": 1.0 + normal(HIDDEN, scale=0.1),
        "ln2.bias": normal(HIDDEN, scale=0.1),
        "ffn.up.weight": normal(HIDDEN, FFN),
        "ffn.up.bias": normal(FFN, scale=0.05),
        "ffn.down.weight": normal(FFN, HIDDEN),
        "ffn.down.bias": normal(HIDDEN, scale=0.05),
        "ln_f.scale": 1.0 + normal(HIDDEN, scale=0.1),
        "ln_f.bias": normal(HIDDEN, scale=0.1),
        "lm_head.weight": normal(HIDDEN, VOCAB),
    }


class GraphBuilder:
    """Collects nodes with unique, exporter-like names (`MatMul_3`)."""

    def __init__(self):
        self.nodes, self.initializers, self.count = [], [], 0

    def op(self, op_type, inputs, **attrs):
        self.count += 1
        name = f"{op_type}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [name + "_out"], name=name, **attrs))
        return name + "_out"

    def const_i64(self, values, name):
        self.initializers.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def const_node(self, value, name):
        """A Constant node, as exporters write scalars."""
        self.nodes.append(helper.make_node(
            "Constant", [], [name], name=name,
            value=numpy_helper.from_array(np.array(value, dtype=np.float32))))
        return name


def build_model(weights):
    g = GraphBuilder()
    for name, value in weights.items():
        g.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))

    # Embeddings: token Gather plus positions 0..seq-1 from the input's shape.
    tokens = g.op("Gather", ["tok_embed", "input_ids"], axis=0)
    ids_shape = g.op("Shape", ["input_ids"])
    seq = g.op("Gather", [ids_shape, g.const_i64(1, "seq_axis")], axis=0)
    positions = g.op("Range", [g.const_i64(0, "range_start"), seq, g.const_i64(1, "range_step")])
    x = g.op("Add", [tokens, g.op("Gather", ["pos_embed", positions], axis=0)])

    # Additive mask [batch, 1, 1, seq]: 0 where attended, -10000 where padded.
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    one = g.const_node(1.0, "one")
    big_negative = g.const_node(-10000.0, "big_negative")
    mask = g.op("Mul", [g.op("Sub", [one, mask_f]), big_negative])
    mask = g.op("Unsqueeze", [mask, g.const_i64([1, 2], "mask_axes")])

    # Attention, with the head shape built from the activation's shape.
    h = g.op("LayerNormalization", [x, "ln1.scale", "ln1.bias"], axis=-1, epsilon=EPS)
    h_shape = g.op("Shape", [h])
    batch_dim = g.op("Unsqueeze", [g.op("Gather", [h_shape, g.const_i64(0, "batch_index")], axis=0),
                                   g.const_i64([0], "unsqueeze_axes")])
    seq_dim = g.op("Unsqueeze", [g.op("Gather", [h_shape, g.const_i64(1, "seq_index")], axis=0),
                                 "unsqueeze_axes"])
    heads_shape = g.op("Concat", [batch_dim, seq_dim, g.const_i64([HEADS, HEAD_DIM], "head_split")],
                       axis=0)
    merged_shape = g.op("Concat", [batch_dim, seq_dim, g.const_i64([HIDDEN], "head_merge")], axis=0)

    def heads(name, perm):
        proj = g.op("Add", [g.op("MatMul", [h, f"attn.{name}.weight"]), f"attn.{name}.bias"])
        return g.op("Transpose", [g.op("Reshape", [proj, heads_shape])], perm=perm)

    q = heads("q", [0, 2, 1, 3])   # [batch, heads, seq, head_dim]
    k = heads("k", [0, 2, 3, 1])   # [batch, heads, head_dim, seq]
    v = heads("v", [0, 2, 1, 3])
    scale = g.const_node(math.sqrt(HEAD_DIM), "attn_scale")
    scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), scale]), mask])
    probs = g.op("Softmax", [scores], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, merged_shape])
    attn = g.op("Add", [g.op("MatMul", [context, "attn.out.weight"]), "attn.out.bias"])
    x = g.op("Add", [x, attn])

    # Feed-forward with GELU as 0.5 * u * (1 + erf(u / sqrt(2))).
    h = g.op("LayerNormalization", [x, "ln2.scale", "ln2.bias"], axis=-1, epsilon=EPS)
    up = g.op("Add", [g.op("MatMul", [h, "ffn.up.weight"]), "ffn.up.bias"])
    erf = g.op("Erf", [g.op("Div", [up, g.const_node(math.sqrt(2.0), "sqrt2")])])
    gelu = g.op("Mul", [g.op("Mul", [up, g.op("Add", [erf, one])]), g.const_node(0.5, "half")])
    down = g.op("Add", [g.op("MatMul", [gelu, "ffn.down.weight"]), "ffn.down.bias"])
    x = g.op("Add", [x, down])

    # Heads: per-token logits and a mean-pooled sentence vector.
    h = g.op("LayerNormalization", [x, "ln_f.scale", "ln_f.bias"], axis=-1, epsilon=EPS)
    g.nodes.append(helper.make_node("MatMul", [h, "lm_head.weight"], ["logits"], name="lm_head"))
    g.nodes.append(helper.make_node("ReduceMean", [h], ["pooled"], name="pool", axes=[1], keepdims=0))

    graph = helper.make_graph(
        g.nodes, "sample_encoder",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", VOCAB]),
                 helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", HIDDEN])],
        initializer=g.initializers)
    model = helper.make_model(graph, producer_name="kiln gen_sample.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(weights, input_ids, attention_mask):
    """The same network in float64 numpy."""
    w = weights
    erf = np.vectorize(math.erf)

    def layer_norm(x, scale, bias):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + EPS) * scale + bias

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    batch, seq = input_ids.shape
    x = w["tok_embed"][input_ids] + w["pos_embed"][np.arange(seq)]
    mask = ((1.0 - attention_mask.astype(np.float64)) * -10000.0)[:, None, None, :]

    h = layer_norm(x, w["ln1.scale"], w["ln1.bias"])

    def heads(name):
        proj = h @ w[f"attn.{name}.weight"] + w[f"attn.{name}.bias"]
        return proj.reshape(batch, seq, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

    q, k, v = heads("q"), heads("k"), heads("v")
    probs = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(HEAD_DIM) + mask)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, HIDDEN)
    x = x + context @ w["attn.out.weight"] + w["attn.out.bias"]

    h = layer_norm(x, w["ln2.scale"], w["ln2.bias"])
    up = h @ w["ffn.up.weight"] + w["ffn.up.bias"]
    x = x + (0.5 * up * (1.0 + erf(up / math.sqrt(2.0)))) @ w["ffn.down.weight"] + w["ffn.down.bias"]

    h = layer_norm(x, w["ln_f.scale"], w["ln_f.bias"])
    return [h @ w["lm_head.weight"], h.mean(axis=1)]


def write_data_set(directory, inputs, outputs):
    os.makedirs(directory, exist_ok=True)
    for k, (name, value) in enumerate(inputs):
        with open(os.path.join(directory, f"input_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(value, name).SerializeToString())
    for k, (name, value) in enumerate(outputs):
        with open(os.path.join(directory, f"output_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(value.astype(np.float32), name).SerializeToString())


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "sample-encoder")
    rng = np.random.default_rng(20240611)
    # Round the weights to float32 first so the float64 reference sees exactly
    # what the model stores.
    weights = {k: v.astype(np.float32).astype(np.float64) for k, v in make_weights(rng).items()}
    os.makedirs(out_dir, exist_ok=True)
    onnx.save(build_model(weights), os.path.join(out_dir, "model.onnx"))

    # (batch, seq, padded tail length per row): set 1 has other dims than set 0.
    for index, (batch, seq, padding) in enumerate([(2, 7, [0, 3]), (1, 12, [2])]):
        input_ids = rng.integers(0, VOCAB, size=(batch, seq), dtype=np.int64)
        attention_mask = np.ones((batch, seq), dtype=np.int64)
        for row, pad in enumerate(padding):
            attention_mask[row, seq - pad:] = 0
        outputs = reference(weights, input_ids, attention_mask)
        write_data_set(os.path.join(out_dir, f"test_data_set_{index}"),
                       [("input_ids", input_ids), ("attention_mask", attention_mask)],
                       [("logits", outputs[0]), ("pooled", outputs[1])])


if __name__ == "__main__":
    main()
