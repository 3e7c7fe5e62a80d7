"""The model zoo: Hugging Face families and torch.nn modules, exported as users export them.

Each family is built from its `transformers` config (or from torch.nn) at a small size
with random weights and a fixed seed (nothing is downloaded), then exported by
torch.onnx.export at opset 17 with dynamic batch and sequence (and past) dims. Beside
model.onnx, two data sets in the ONNX backend-test layout, test_data_set_{0,1}/
{input,output}_K.pb: set 1 has other dims than set 0, so one artifact is checked at two
shapes. References are computed by torch in float64 and stored as float32.

usage: $ZOO_PY models/zoo/gen_zoo.py OUT_DIR [FAMILY ...]   (default: every family)
ZOO_PY comes from models/zoo/setup.sh. Writes OUT_DIR/FAMILY/.
"""
import json
import os
import sys
import warnings

import torch
import torch.nn as nn
import transformers as tf
import onnx
from onnx import numpy_helper

OPSET = 17
VOCAB = 128
warnings.filterwarnings("ignore")
tf.logging.set_verbosity_error()


def write_data_set(directory, names, inputs, outputs):
    os.makedirs(directory, exist_ok=True)
    for i, (name, value) in enumerate(zip(names, inputs)):
        array = value.numpy()
        onnx.save_tensor(numpy_helper.from_array(array, name), f"{directory}/input_{i}.pb")
    for i, value in enumerate(outputs):
        array = value.detach().to(torch.float32).numpy()
        onnx.save_tensor(numpy_helper.from_array(array), f"{directory}/output_{i}.pb")


def as_double(value):
    return value.double() if value.is_floating_point() else value


def export(module, out_dir, names, outputs, dynamic, data_sets):
    """Exports module at data_sets[0]'s inputs; writes each set's float64 references."""
    module.eval()
    os.makedirs(out_dir, exist_ok=True)
    # Traced with grad enabled: under no_grad, torch.nn's encoder layer takes its fused
    # fast path, which has no ONNX export.
    torch.onnx.export(module, tuple(data_sets[0]), f"{out_dir}/model.onnx",
                      input_names=names, output_names=outputs, dynamic_axes=dynamic,
                      opset_version=OPSET, do_constant_folding=True)
    with torch.no_grad():
        module.double()
        torch.set_default_dtype(torch.float64)  # masks made with torch.full take the model's dtype
        for i, inputs in enumerate(data_sets):
            result = module(*[as_double(x) for x in inputs])
            result = result if isinstance(result, (tuple, list)) else (result,)
            write_data_set(f"{out_dir}/test_data_set_{i}", names, inputs, result)
        torch.set_default_dtype(torch.float32)
        module.float()


def perturbed(model):
    """Weights away from the families' inits (ones for norms, zeros for biases), so a
    kernel that swaps or drops one shows in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, p.shape[-1] ** -0.5)
    return model


def token_ids(batch, seq):
    return torch.randint(2, VOCAB, (batch, seq))


def padded_mask(batch, seq, padded):
    """Ones, with the last row's last `padded` tokens masked out (right padding)."""
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if padded:
        mask[-1, seq - padded:] = 0
    return mask


# Encoders: input_ids and attention_mask (and token types), set 0 padded, set 1 not.
class Encoder(nn.Module):
    def __init__(s, model, token_types):
        super().__init__(); s.model = model; s.token_types = token_types
    def forward(s, input_ids, attention_mask, *token_type_ids):
        extra = {"token_type_ids": token_type_ids[0]} if s.token_types else {}
        out = s.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return tuple(v for v in (out[0], getattr(out, "pooler_output", None)) if v is not None)


def encoder(model, out_dir, token_types=False):
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    sets = []
    for batch, seq, padded in ((2, 12, 5), (3, 7, 0)):
        ids, mask = token_ids(batch, seq), padded_mask(batch, seq, padded)
        sets.append([ids, mask] + ([torch.zeros_like(ids)] if token_types else []))
    module = Encoder(model, token_types)
    outputs = ["last_hidden_state"] + (["pooler_output"] if hasattr(model, "pooler") and model.pooler else [])
    dynamic = {n: {0: "batch", 1: "seq"} for n in names}
    dynamic.update({o: {0: "batch", 1: "seq"} for o in outputs[:1]})
    dynamic.update({o: {0: "batch"} for o in outputs[1:]})
    export(module, out_dir, names, outputs, dynamic, sets)


def bert(out_dir):
    config = tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64)
    encoder(perturbed(tf.BertModel(config)), out_dir, token_types=True)


def roberta(out_dir):
    config = tf.RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=64)
    encoder(perturbed(tf.RobertaModel(config)), out_dir)


def distilbert(out_dir):
    config = tf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                 max_position_embeddings=64)
    encoder(perturbed(tf.DistilBertModel(config)), out_dir)


class Vision(nn.Module):
    def __init__(s, model):
        super().__init__(); s.model = model
    def forward(s, pixel_values):
        out = s.model(pixel_values=pixel_values)
        return out.last_hidden_state, out.pooler_output


def vit(out_dir):
    config = tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64)
    sets = [[torch.randn(2, 3, 32, 32)], [torch.randn(1, 3, 32, 32)]]
    dynamic = {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}}
    export(Vision(perturbed(tf.ViTModel(config))), out_dir, ["pixel_values"], ["last_hidden_state", "pooler_output"],
           dynamic, sets)


# Decoders: input_ids and attention_mask, then logits; with past, the cache in and out.
class Decoder(nn.Module):
    def __init__(s, model):
        super().__init__(); s.model = model
    def forward(s, input_ids, attention_mask, *past_flat):
        past = tuple((past_flat[i], past_flat[i + 1]) for i in range(0, len(past_flat), 2)) or None
        out = s.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=past,
                      use_cache=past is not None)
        if past is None:
            return out.logits
        return (out.logits,) + tuple(t for layer in out.past_key_values for t in layer)


def past_of(model, batch, length):
    """The model's own cache after `length` tokens: its layout is the family's."""
    with torch.no_grad():
        ids = token_ids(batch, length)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
    return [t.clone() for layer in out.past_key_values for t in layer]


def cache_axes(model, layers):
    """Which axes of each past tensor are batch and past length, found by probing two sizes."""
    a, b = past_of(model, 1, 2), past_of(model, 2, 3)
    axes = []
    for x, y in zip(a, b):
        dims = {}
        for axis, (m, n) in enumerate(zip(x.shape, y.shape)):
            if m != n:
                dims[axis] = "past" if (m, n) == (2, 3) else "batch_heads" if n == 2 * m and m > 2 else "batch"
        axes.append(dims)
    return axes


def decoder(model, out_dir, with_past):
    perturbed(model).eval()
    torch.manual_seed(1)
    names, dynamic = ["input_ids", "attention_mask"], {"input_ids": {0: "batch", 1: "seq"}}
    outputs = ["logits"]
    if not with_past:
        dynamic.update(attention_mask={0: "batch", 1: "seq"}, logits={0: "batch", 1: "seq"})
        sets = [[token_ids(2, 8), padded_mask(2, 8, 2)], [token_ids(1, 5), padded_mask(1, 5, 0)]]
        return export(Decoder(model), out_dir, names, outputs, dynamic, sets)
    layers = len(past_of(model, 1, 1)) // 2
    past_names = [f"past_key_values.{i // 2}.{'key' if i % 2 == 0 else 'value'}" for i in range(2 * layers)]
    names += past_names
    outputs += [n.replace("past_key_values", "present") for n in past_names]
    dynamic.update(attention_mask={0: "batch", 1: "total"}, logits={0: "batch", 1: "seq"})
    for name, present, axes in zip(past_names, outputs[1:], cache_axes(model, layers)):
        dynamic[name] = {a: ("past" if v == "past" else v) for a, v in axes.items()}
        dynamic[present] = {a: ("total" if v == "past" else v) for a, v in axes.items()}
    sets = []
    # The export traces set 0: with one new token, transformers skips building the causal
    # mask in Python, and the graph would hold none. So set 0 has three new tokens.
    for batch, seq, past in ((2, 3, 4), (1, 1, 7)):
        sets.append([token_ids(batch, seq), padded_mask(batch, past + seq, 0)] + past_of(model, batch, past))
    export(Decoder(model), out_dir, names, outputs, dynamic, sets)


def causal_lm(config_class, model_class, **config):
    def build(out_dir, with_past=False):
        torch.manual_seed(0)
        model = model_class(config_class(**config))
        decoder(model, out_dir, with_past)
    return build


LLAMA = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def qwen2(out_dir, with_past=False):
    """Qwen2 is Llama with biases on q, k and v only; transformers 4.36 predates its class."""
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(attention_bias=True, rope_theta=1e6, **LLAMA))
    for layer in model.model.layers:
        layer.self_attn.o_proj.bias = None
    decoder(model, out_dir, with_past)


DECODERS = {
    "llama": causal_lm(tf.LlamaConfig, tf.LlamaForCausalLM, **LLAMA),
    "mistral": causal_lm(tf.MistralConfig, tf.MistralForCausalLM, sliding_window=4, **LLAMA),
    "qwen2": qwen2,
    "phi": causal_lm(tf.PhiConfig, tf.PhiForCausalLM, vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                     num_hidden_layers=2, num_attention_heads=4, partial_rotary_factor=0.5,
                     max_position_embeddings=128),
    "gptj": causal_lm(tf.GPTJConfig, tf.GPTJForCausalLM, vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                      rotary_dim=4, n_positions=128),
    "gpt_neox": causal_lm(tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM, vocab_size=VOCAB, hidden_size=32,
                          intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, rotary_pct=0.5,
                          max_position_embeddings=128),
    "falcon": causal_lm(tf.FalconConfig, tf.FalconForCausalLM, vocab_size=VOCAB, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=4, multi_query=True, parallel_attn=True,
                        new_decoder_architecture=False, alibi=False, bias=False),
    "bloom": causal_lm(tf.BloomConfig, tf.BloomForCausalLM, vocab_size=VOCAB, hidden_size=32, n_layer=2,
                       n_head=4),
    "gpt2": causal_lm(tf.GPT2Config, tf.GPT2LMHeadModel, vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                      n_positions=128),
}


class Seq2Seq(nn.Module):
    def __init__(s, model):
        super().__init__(); s.model = model
    def forward(s, input_ids, attention_mask, decoder_input_ids):
        return s.model(input_ids=input_ids, attention_mask=attention_mask,
                       decoder_input_ids=decoder_input_ids, use_cache=False).logits


def t5(out_dir):
    torch.manual_seed(0)
    config = tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                         relative_attention_num_buckets=8, relative_attention_max_distance=16,
                         decoder_start_token_id=0)
    names = ["input_ids", "attention_mask", "decoder_input_ids"]
    dynamic = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
               "decoder_input_ids": {0: "batch", 1: "target"}, "logits": {0: "batch", 1: "target"}}
    sets = [[token_ids(2, 12), padded_mask(2, 12, 4), token_ids(2, 6)],
            [token_ids(1, 20), padded_mask(1, 20, 0), token_ids(1, 3)]]
    export(Seq2Seq(perturbed(tf.T5ForConditionalGeneration(config))), out_dir, names, ["logits"], dynamic, sets)


# torch.nn's own transformer, batch first, with masks and key padding.
D_MODEL = 32


class NnEncoder(nn.Module):
    def __init__(s):
        super().__init__()
        layer = nn.TransformerEncoderLayer(D_MODEL, 4, 64, dropout=0.0, batch_first=True)
        s.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    def forward(s, src, src_key_padding_mask):
        return s.encoder(src, src_key_padding_mask=src_key_padding_mask)


def nn_encoder(out_dir):
    torch.manual_seed(0)
    names = ["src", "src_key_padding_mask"]
    dynamic = {"src": {0: "batch", 1: "seq"}, "src_key_padding_mask": {0: "batch", 1: "seq"},
               "out": {0: "batch", 1: "seq"}}
    sets = [[torch.randn(2, 10, D_MODEL), padded_mask(2, 10, 3) == 0],
            [torch.randn(3, 6, D_MODEL), padded_mask(3, 6, 0) == 0]]
    export(perturbed(NnEncoder()), out_dir, names, ["out"], dynamic, sets)


class NnDecoder(nn.Module):
    def __init__(s):
        super().__init__()
        layer = nn.TransformerDecoderLayer(D_MODEL, 4, 64, dropout=0.0, batch_first=True)
        s.decoder = nn.TransformerDecoder(layer, 2)
    def forward(s, tgt, memory, tgt_key_padding_mask, memory_key_padding_mask):
        t = tgt.shape[1]
        causal = torch.triu(torch.full((t, t), float("-inf"), dtype=tgt.dtype), diagonal=1)
        return s.decoder(tgt, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_key_padding_mask,
                         memory_key_padding_mask=memory_key_padding_mask)


def nn_decoder(out_dir):
    torch.manual_seed(0)
    names = ["tgt", "memory", "tgt_key_padding_mask", "memory_key_padding_mask"]
    dynamic = {"tgt": {0: "batch", 1: "target"}, "memory": {0: "batch", 1: "source"},
               "tgt_key_padding_mask": {0: "batch", 1: "target"},
               "memory_key_padding_mask": {0: "batch", 1: "source"}, "out": {0: "batch", 1: "target"}}
    sets = [[torch.randn(2, 6, D_MODEL), torch.randn(2, 9, D_MODEL), padded_mask(2, 6, 2) == 0,
             padded_mask(2, 9, 3) == 0],
            [torch.randn(1, 4, D_MODEL), torch.randn(1, 11, D_MODEL), padded_mask(1, 4, 0) == 0,
             padded_mask(1, 11, 0) == 0]]
    export(perturbed(NnDecoder()), out_dir, names, ["out"], dynamic, sets)


# Attention layers per family (the fused graph must hold one attention op each): two
# layers everywhere; T5 and nn.TransformerDecoder layers attend twice (self, cross).
ATTENTION_LAYERS = {"t5": 6, "nn_decoder": 4}


def write_manifest(out_dir, family, attention_layers):
    """zoo.json: what bench/zoo.py's table needs to know of a model beyond its graph."""
    with open(f"{out_dir}/zoo.json", "w") as f:
        json.dump({"family": family, "attention_layers": attention_layers,
                   "transformers": tf.__version__, "torch": torch.__version__.split("+")[0]}, f, indent=1)
        f.write("\n")


def families():
    table = {"bert": bert, "roberta": roberta, "distilbert": distilbert, "vit": vit, "t5": t5,
             "nn_encoder": nn_encoder, "nn_decoder": nn_decoder}
    for name, build in DECODERS.items():
        table[name] = build
        table[name + "_past"] = lambda out_dir, build=build: build(out_dir, with_past=True)
    return table


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out, wanted = sys.argv[1], sys.argv[2:]
    table = families()
    unknown = [w for w in wanted if w not in table]
    if unknown:
        sys.exit(f"gen_zoo.py: unknown families {unknown}; known: {sorted(table)}")
    for name in wanted or sorted(table):
        torch.manual_seed(0)
        table[name](f"{out}/{name}")
        write_manifest(f"{out}/{name}", name, ATTENTION_LAYERS.get(name, 2))
        print(f"{name}: {out}/{name}")


if __name__ == "__main__":
    main()
