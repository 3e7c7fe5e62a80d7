/* embed: a small C program that embeds the kiln runtime. It loads a .kiln
 * artifact, prints the model's inputs and outputs, builds inputs from the
 * command line, runs the model once and prints each output's shape and first
 * values. It needs only <kiln/kiln.h> and libkiln_runtime. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln/kiln.h>

#define MAX_RANK 16
#define SHOWN_VALUES 8

static void usage(FILE *out) {
  fprintf(out,
          "usage: kiln_embed MODEL.kiln [--fill VALUE] [NAME=DIMS[:V1,V2,...]]...\n"
          "\n"
          "Loads MODEL.kiln, prints its inputs and outputs, runs it once and prints\n"
          "each output's shape and first values.\n"
          "\n"
          "  NAME=DIMS         input NAME with shape DIMS (e.g. 2x8; empty for a scalar),\n"
          "                    every element VALUE (--fill, default 1)\n"
          "  NAME=DIMS:VALUES  input NAME with the given comma-separated values\n"
          "  An input whose dims are all static needs no argument.\n"
          "Supported input dtypes: f32, f64, i64, i32, i8, u8, bool.\n");
}

/* One NAME=DIMS[:VALUES] argument. */
typedef struct input_arg {
  const char *name; /* points into argv */
  size_t name_length;
  size_t rank;
  int64_t shape[MAX_RANK];
  const char *values; /* comma-separated, or NULL to use the fill value */
} input_arg;

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "kiln_embed: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  return 1;
}

/* "2x8" -> {2, 8}; "" -> rank 0. Returns 0 on success. */
static int parse_dims(const char *text, size_t length, input_arg *arg) {
  arg->rank = 0;
  size_t i = 0;
  while (i < length) {
    if (arg->rank == MAX_RANK) return -1;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text + i, &end, 10);
    size_t used = (size_t)(end - (text + i));
    if (used == 0 || errno != 0 || value < 0) return -1;
    arg->shape[arg->rank++] = (int64_t)value;
    i += used;
    if (i < length) {
      if (text[i] != 'x') return -1;
      ++i;
      if (i == length) return -1;
    }
  }
  return 0;
}

static void format_dims(const kiln_value_info *info, char *out, size_t size) {
  size_t used = (size_t)snprintf(out, size, "%s[", kiln_dtype_name(info->dtype));
  for (size_t i = 0; i < info->rank && used < size; ++i) {
    const char *sep = i ? ", " : "";
    if (info->dims[i] >= 0)
      used += (size_t)snprintf(out + used, size - used, "%s%lld", sep, (long long)info->dims[i]);
    else
      used += (size_t)snprintf(out + used, size - used, "%s%s", sep, info->dim_names[i]);
  }
  if (used < size) snprintf(out + used, size - used, "]");
}

/* Writes element `index`; the dtype is one build_input accepts. */
static void store(void *data, kiln_dtype dtype, size_t index, double value) {
  switch (dtype) {
    case KILN_DTYPE_F32: ((float *)data)[index] = (float)value; return;
    case KILN_DTYPE_F64: ((double *)data)[index] = value; return;
    case KILN_DTYPE_I64: ((int64_t *)data)[index] = (int64_t)value; return;
    case KILN_DTYPE_I32: ((int32_t *)data)[index] = (int32_t)value; return;
    case KILN_DTYPE_I8: ((int8_t *)data)[index] = (int8_t)value; return;
    case KILN_DTYPE_U8: ((uint8_t *)data)[index] = (uint8_t)value; return;
    case KILN_DTYPE_BOOL: ((uint8_t *)data)[index] = value != 0.0; return;
    default: return;
  }
}

static float half_to_float(uint16_t bits) {
  int exponent = (bits >> 10) & 0x1f;
  double mantissa = bits & 0x3ff;
  double magnitude;
  if (exponent == 0) magnitude = mantissa / 1024.0 / 16384.0; /* subnormal: m * 2^-24 */
  else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
  else magnitude = (1.0 + mantissa / 1024.0) * (double)(1 << exponent) / 32768.0; /* 2^(e-15) */
  return (float)((bits & 0x8000) ? -magnitude : magnitude);
}

static double load(const void *data, kiln_dtype dtype, size_t index) {
  switch (dtype) {
    case KILN_DTYPE_F32: return ((const float *)data)[index];
    case KILN_DTYPE_F16: return half_to_float(((const uint16_t *)data)[index]);
    case KILN_DTYPE_BF16: {
      uint32_t bits = (uint32_t)((const uint16_t *)data)[index] << 16;
      float value;
      memcpy(&value, &bits, sizeof value);
      return value;
    }
    case KILN_DTYPE_F64: return ((const double *)data)[index];
    case KILN_DTYPE_I64: return (double)((const int64_t *)data)[index];
    case KILN_DTYPE_I32: return ((const int32_t *)data)[index];
    case KILN_DTYPE_I8: return ((const int8_t *)data)[index];
    case KILN_DTYPE_U8: return ((const uint8_t *)data)[index];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)data)[index];
  }
  return 0.0;
}

static size_t element_count(const int64_t *shape, size_t rank) {
  size_t count = 1;
  for (size_t i = 0; i < rank; ++i) count *= (size_t)shape[i];
  return count;
}

/* Fills `out` for one input: its shape goes to `shape` (MAX_RANK entries),
 * its data to a new buffer in *buffer. Returns 0 on success. */
static int build_input(const kiln_value_info *info, const input_arg *arg, double fill, kiln_tensor *out,
                       int64_t *shape, void **buffer) {
  char type[256];
  format_dims(info, type, sizeof type);
  size_t element_size = kiln_dtype_size(info->dtype);
  if (info->dtype == KILN_DTYPE_F16 || info->dtype == KILN_DTYPE_BF16) {
    fprintf(stderr, "kiln_embed: input '%s' is %s; this example fills f32, f64, integer and bool inputs\n",
            info->name, type);
    return -1;
  }
  if (info->rank > MAX_RANK) {
    fprintf(stderr, "kiln_embed: input '%s' has more than %d dims\n", info->name, MAX_RANK);
    return -1;
  }
  size_t rank;
  if (arg) {
    rank = arg->rank;
    memcpy(shape, arg->shape, rank * sizeof(int64_t));
  } else {
    rank = info->rank;
    for (size_t i = 0; i < rank; ++i) {
      if (info->dims[i] < 0) {
        fprintf(stderr, "kiln_embed: input '%s' is %s; give its shape as %s=DIMS\n", info->name, type,
                info->name);
        return -1;
      }
      shape[i] = info->dims[i];
    }
  }
  size_t count = element_count(shape, rank);
  *buffer = calloc(count ? count : 1, element_size);
  if (!*buffer) {
    fail("out of memory", NULL);
    return -1;
  }

  const char *values = arg ? arg->values : NULL;
  for (size_t i = 0; i < count; ++i) {
    double value = fill;
    if (values) {
      char *end = NULL;
      value = strtod(values, &end);
      if (end == values || (*end != ',' && *end != '\0') || (*end == '\0' && i + 1 < count)) {
        fprintf(stderr, "kiln_embed: input '%s' needs %zu comma-separated values\n", info->name, count);
        return -1;
      }
      values = *end ? end + 1 : end;
    }
    store(*buffer, info->dtype, i, value);
  }
  if (values && *values) {
    fprintf(stderr, "kiln_embed: input '%s' needs %zu comma-separated values, got more\n", info->name, count);
    return -1;
  }
  out->name = info->name;
  out->dtype = info->dtype;
  out->rank = rank;
  out->shape = shape;
  out->data = *buffer;
  return 0;
}

static void print_output(const kiln_tensor *t) {
  printf("  %s: %s[", t->name, kiln_dtype_name(t->dtype));
  for (size_t i = 0; i < t->rank; ++i) printf("%s%lld", i ? ", " : "", (long long)t->shape[i]);
  printf("] = [");
  size_t count = element_count(t->shape, t->rank);
  for (size_t i = 0; i < count && i < SHOWN_VALUES; ++i) printf("%s%g", i ? ", " : "", load(t->data, t->dtype, i));
  printf("%s]\n", count > SHOWN_VALUES ? ", ..." : "");
}

int main(int argc, char **argv) {
  const char *path = NULL;
  double fill = 1.0;
  input_arg args[64];
  size_t n_args = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--fill")) {
      char *end = NULL;
      if (i + 1 == argc) return fail("--fill needs a value", NULL);
      fill = strtod(argv[++i], &end);
      if (end == argv[i] || *end) return fail("--fill needs a number, got", argv[i]);
    } else if (strchr(argv[i], '=')) {
      if (n_args == 64) return fail("too many inputs", NULL);
      input_arg *arg = &args[n_args++];
      const char *eq = strchr(argv[i], '=');
      const char *colon = strchr(eq, ':');
      arg->name = argv[i];
      arg->name_length = (size_t)(eq - argv[i]);
      size_t dims_length = colon ? (size_t)(colon - eq - 1) : strlen(eq + 1);
      if (parse_dims(eq + 1, dims_length, arg) != 0) return fail("bad shape (expected e.g. 2x8) in", argv[i]);
      arg->values = colon ? colon + 1 : NULL;
    } else if (!path) {
      path = argv[i];
    } else {
      usage(stderr);
      return 1;
    }
  }
  if (!path) {
    usage(stderr);
    return 1;
  }

  kiln_model *model = NULL;
  if (kiln_model_load(path, &model) != KILN_OK) return fail(kiln_last_error(), NULL);

  size_t n_inputs = kiln_model_num_inputs(model);
  size_t n_outputs = kiln_model_num_outputs(model);
  char type[256];
  printf("model: %s\ninputs:\n", path);
  for (size_t i = 0; i < n_inputs; ++i) {
    kiln_value_info info;
    kiln_model_input(model, i, &info);
    format_dims(&info, type, sizeof type);
    printf("  %s: %s\n", info.name, type);
  }
  printf("outputs:\n");
  for (size_t i = 0; i < n_outputs; ++i) {
    kiln_value_info info;
    kiln_model_output(model, i, &info);
    format_dims(&info, type, sizeof type);
    printf("  %s: %s\n", info.name, type);
  }

  int status = 1;
  kiln_tensor *inputs = calloc(n_inputs ? n_inputs : 1, sizeof(kiln_tensor));
  kiln_tensor *outputs = calloc(n_outputs ? n_outputs : 1, sizeof(kiln_tensor));
  void **buffers = calloc(n_inputs ? n_inputs : 1, sizeof(void *));
  int64_t(*shapes)[MAX_RANK] = calloc(n_inputs ? n_inputs : 1, sizeof *shapes);
  kiln_session *session = NULL;
  if (!inputs || !outputs || !buffers || !shapes) {
    fail("out of memory", NULL);
    goto done;
  }
  for (size_t a = 0; a < n_args; ++a) {
    int known = 0;
    for (size_t i = 0; i < n_inputs; ++i) {
      kiln_value_info info;
      kiln_model_input(model, i, &info);
      if (strlen(info.name) == args[a].name_length && !strncmp(info.name, args[a].name, args[a].name_length))
        known = 1;
    }
    if (!known) {
      fprintf(stderr, "kiln_embed: the model has no input '%.*s'\n", (int)args[a].name_length, args[a].name);
      goto done;
    }
  }
  for (size_t i = 0; i < n_inputs; ++i) {
    kiln_value_info info;
    kiln_model_input(model, i, &info);
    const input_arg *arg = NULL;
    for (size_t a = 0; a < n_args; ++a) {
      if (strlen(info.name) == args[a].name_length && !strncmp(info.name, args[a].name, args[a].name_length))
        arg = &args[a];
    }
    if (build_input(&info, arg, fill, &inputs[i], shapes[i], &buffers[i]) != 0) goto done;
  }

  if (kiln_session_create(model, NULL, &session) != KILN_OK ||
      kiln_session_run(session, inputs, n_inputs, outputs, n_outputs) != KILN_OK) {
    fail(kiln_last_error(), NULL);
    goto done;
  }
  printf("ran:\n");
  for (size_t i = 0; i < n_outputs; ++i) print_output(&outputs[i]);
  status = 0;

done:
  kiln_session_free(session);
  if (buffers)
    for (size_t i = 0; i < n_inputs; ++i) free(buffers[i]);
  free(buffers);
  free(shapes);
  free(outputs);
  free(inputs);
  kiln_model_free(model);
  return status;
}
