/* sentence_similarity: embeds sentences with a compiled sentence-embedding
 * model (all-MiniLM-L6-v2: models/zoo/minilm.py, then kiln compile) and prints
 * their cosine similarities. It tokenizes with the model's own WordPiece
 * vocabulary (BERT's uncased rules), pads the batch to its longest sentence,
 * runs the model once through <kiln/kiln.h> and reads its first output:
 * [batch, dim] embeddings, or [batch, seq, dim] token states, mean-pooled over
 * the real tokens. Needs only <kiln/kiln.h> and libkiln_runtime. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln/kiln.h>

#define MAX_TOKENS 128 /* per sentence, [CLS] and [SEP] included */
#define MAX_WORD 100   /* longer words are [UNK], as BERT's tokenizer does */

typedef struct vocab {
  char **words; /* by id */
  int64_t *sorted; /* ids sorted by word, for bsearch */
  int64_t size;
} vocab;

static const vocab *sort_vocab; /* qsort has no context argument */

static int by_word(const void *a, const void *b) {
  return strcmp(sort_vocab->words[*(const int64_t *)a], sort_vocab->words[*(const int64_t *)b]);
}

static char *copy_of(const char *text) { /* strdup is not C11 */
  char *copy = malloc(strlen(text) + 1);
  if (copy) strcpy(copy, text);
  return copy;
}

static int load_vocab(const char *path, vocab *v) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[512];
  int64_t capacity = 1024;
  v->words = malloc(sizeof(char *) * (size_t)capacity);
  v->size = 0;
  while (v->words && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (v->size == capacity) {
      capacity *= 2;
      char **grown = realloc(v->words, sizeof(char *) * (size_t)capacity);
      if (!grown) break;
      v->words = grown;
    }
    v->words[v->size++] = copy_of(line);
  }
  fclose(f);
  v->sorted = malloc(sizeof(int64_t) * (size_t)(v->size ? v->size : 1));
  if (!v->words || !v->sorted) return -1;
  for (int64_t i = 0; i < v->size; ++i) v->sorted[i] = i;
  sort_vocab = v;
  qsort(v->sorted, (size_t)v->size, sizeof(int64_t), by_word);
  return 0;
}

/* The id of `word`, or -1. */
static int64_t lookup(const vocab *v, const char *word) {
  int64_t lo = 0, hi = v->size - 1;
  while (lo <= hi) {
    const int64_t mid = (lo + hi) / 2;
    const int c = strcmp(v->words[v->sorted[mid]], word);
    if (c == 0) return v->sorted[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* WordPiece: the longest prefix in the vocabulary, then "##" pieces; a word
 * with a part no piece covers is [UNK]. Appends to ids, returns the count. */
static size_t word_pieces(const vocab *v, const char *word, int64_t unk, int64_t *ids, size_t room) {
  const size_t length = strlen(word);
  if (length > MAX_WORD) return room ? (ids[0] = unk, 1) : 0;
  size_t count = 0, start = 0;
  char piece[MAX_WORD + 3];
  while (start < length) {
    int64_t found = -1;
    size_t end = length;
    for (; end > start; --end) {
      snprintf(piece, sizeof piece, "%s%.*s", start ? "##" : "", (int)(end - start), word + start);
      if ((found = lookup(v, piece)) >= 0) break;
    }
    if (found < 0) return room ? (ids[0] = unk, 1) : 0;
    if (count < room) ids[count++] = found;
    start = end;
  }
  return count;
}

/* [CLS] words... [SEP]: lower-cased, split at spaces and around punctuation. */
static size_t tokenize(const vocab *v, const char *text, int64_t *ids) {
  const int64_t cls = lookup(v, "[CLS]"), sep = lookup(v, "[SEP]"), unk = lookup(v, "[UNK]");
  size_t count = 0;
  ids[count++] = cls;
  char word[MAX_WORD + 2];
  size_t w = 0;
  for (const char *c = text;; ++c) {
    const int end = *c == '\0' || isspace((unsigned char)*c) || ispunct((unsigned char)*c);
    if (end && w) {
      word[w] = '\0';
      count += word_pieces(v, word, unk, ids + count, MAX_TOKENS - 1 - count);
      w = 0;
    }
    if (*c == '\0') break;
    if (ispunct((unsigned char)*c)) {
      const char mark[2] = {*c, '\0'};
      count += word_pieces(v, mark, unk, ids + count, MAX_TOKENS - 1 - count);
    } else if (!end && w <= MAX_WORD) {
      word[w++] = (char)tolower((unsigned char)*c);
    }
  }
  ids[count++] = sep;
  return count;
}

/* Sentence s's embedding from output 0, normalised to unit length. */
static void embedding(const kiln_tensor *out, const int64_t *mask, int64_t seq, int64_t s, double *e) {
  const float *data = out->data;
  const int64_t dim = out->shape[out->rank - 1];
  double norm = 0;
  for (int64_t d = 0; d < dim; ++d) {
    double sum = 0, tokens = 0;
    if (out->rank == 2) {
      sum = data[s * dim + d], tokens = 1;
    } else {
      for (int64_t t = 0; t < seq; ++t)
        if (mask[s * seq + t]) sum += data[(s * seq + t) * dim + d], tokens += 1;
    }
    e[d] = sum / tokens;
    norm += e[d] * e[d];
  }
  for (int64_t d = 0; d < dim; ++d) e[d] /= sqrt(norm);
}

static int fail(const char *what) {
  fprintf(stderr, "sentence_similarity: %s%s%s\n", what, *kiln_last_error() ? ": " : "", kiln_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: sentence_similarity MODEL.kiln VOCAB.txt SENTENCE SENTENCE...\n"
                    "Prints the cosine similarity of every pair of sentences.\n");
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 1;
  }
  vocab v;
  if (load_vocab(argv[2], &v) != 0) return fail("cannot read the vocabulary");
  if (lookup(&v, "[CLS]") < 0 || lookup(&v, "[SEP]") < 0 || lookup(&v, "[UNK]") < 0 || lookup(&v, "[PAD]") < 0)
    return fail("the vocabulary lacks [CLS], [SEP], [UNK] or [PAD]");
  const int64_t batch = argc - 3;
  int64_t (*tokens)[MAX_TOKENS] = calloc((size_t)batch, sizeof *tokens);
  size_t *lengths = calloc((size_t)batch, sizeof *lengths);
  int64_t seq = 0;
  for (int64_t s = 0; s < batch; ++s) {
    lengths[s] = tokenize(&v, argv[3 + s], tokens[s]);
    if ((int64_t)lengths[s] > seq) seq = (int64_t)lengths[s];
  }
  int64_t *ids = calloc((size_t)(batch * seq), sizeof *ids), *mask = calloc((size_t)(batch * seq), sizeof *mask),
          *types = calloc((size_t)(batch * seq), sizeof *types);
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t t = 0; t < seq; ++t) {
      const int real = t < (int64_t)lengths[s];
      ids[s * seq + t] = real ? tokens[s][t] : lookup(&v, "[PAD]");
      mask[s * seq + t] = real;
    }

  kiln_model *model = NULL;
  kiln_session *session = NULL;
  if (kiln_model_load(argv[1], &model) != KILN_OK) return fail("cannot load the model");
  if (kiln_session_create(model, NULL, &session) != KILN_OK) return fail("cannot create a session");
  const int64_t shape[2] = {batch, seq};
  const kiln_tensor inputs[3] = {{"input_ids", KILN_DTYPE_I64, 2, shape, ids},
                                 {"attention_mask", KILN_DTYPE_I64, 2, shape, mask},
                                 {"token_type_ids", KILN_DTYPE_I64, 2, shape, types}};
  size_t n_inputs = kiln_model_num_inputs(model), n_outputs = kiln_model_num_outputs(model);
  kiln_tensor *outputs = calloc(n_outputs, sizeof *outputs);
  if (n_inputs < 2 || n_inputs > 3) return fail("the model should take input_ids, attention_mask (token_type_ids)");
  if (kiln_session_run(session, inputs, n_inputs, outputs, n_outputs) != KILN_OK) return fail("the run failed");
  if (outputs[0].dtype != KILN_DTYPE_F32 || outputs[0].rank < 2 || outputs[0].rank > 3)
    return fail("output 0 is not f32 [batch, dim] or [batch, seq, dim]");

  const int64_t dim = outputs[0].shape[outputs[0].rank - 1];
  double *e = malloc(sizeof(double) * (size_t)(batch * dim));
  for (int64_t s = 0; s < batch; ++s) embedding(&outputs[0], mask, seq, s, e + s * dim);
  for (int64_t a = 0; a < batch; ++a) {
    for (int64_t b = 0; b < batch; ++b) {
      double dot = 0;
      for (int64_t d = 0; d < dim; ++d) dot += e[a * dim + d] * e[b * dim + d];
      printf("%s%.3f", b ? " " : "", dot);
    }
    printf("  %s\n", argv[3 + a]);
  }
  kiln_session_free(session);
  kiln_model_free(model);
  return 0;
}
