/* kiln runtime: the public C API. Load a .kiln artifact, create a session,
 * run it on named tensors. The library (libkiln_runtime) links neither ONNX,
 * protobuf nor LLVM. Ownership, threading and errors: docs/runtime-api.md. */
#ifndef KILN_KILN_H_
#define KILN_KILN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1, /* null pointer, bad index, unknown/missing input, wrong dtype or shape */
  KILN_ERROR_IO = 2,               /* the artifact file cannot be opened or read */
  KILN_ERROR_INVALID_ARTIFACT = 3, /* wrong magic, truncated, corrupt, newer format version */
  KILN_ERROR_RUN = 4,              /* an op failed while running */
  KILN_ERROR_OUT_OF_MEMORY = 5,
  KILN_ERROR_INTERNAL = 6,     /* a bug in kiln */
  KILN_ERROR_KV_CACHE_FULL = 7 /* kiln_session_step: past + new tokens exceed the KV capacity */
} kiln_status;

/* Element types; the names are kiln's text names ("f32", "i64", ...). */
typedef enum kiln_dtype {
  KILN_DTYPE_F32 = 0,
  KILN_DTYPE_F16 = 1, /* IEEE half, raw 16-bit storage */
  KILN_DTYPE_BF16 = 2,
  KILN_DTYPE_F64 = 3,
  KILN_DTYPE_I64 = 4,
  KILN_DTYPE_I32 = 5,
  KILN_DTYPE_I8 = 6,
  KILN_DTYPE_U8 = 7,
  KILN_DTYPE_BOOL = 8 /* one byte per element, 0 or 1 */
} kiln_dtype;

/* A dense row-major tensor. As an input the caller owns every pointer, which
 * must stay valid for the duration of kiln_session_run. As an output the
 * session fills every field; `name` lives as long as the model, `shape` and
 * `data` until the next run of the same session or its destruction. */
typedef struct kiln_tensor {
  const char *name;
  kiln_dtype dtype;
  size_t rank;
  const int64_t *shape; /* rank entries; may be NULL when rank is 0 */
  const void *data;     /* product(shape) * element size bytes */
} kiln_tensor;

/* One input or output of a model, as the program declares it. */
typedef struct kiln_value_info {
  const char *name;
  kiln_dtype dtype;
  size_t rank;
  /* Per dim: its size when static, else -1. */
  const int64_t *dims;
  /* Per dim: NULL when static, else its symbolic text ("batch", "seq + past")
   * or "?" when unknown until run time. */
  const char *const *dim_names;
} kiln_value_info;

typedef struct kiln_model kiln_model;
typedef struct kiln_session kiln_session;

/* Session options. Set struct_size to sizeof(kiln_session_options) (zero
 * the rest for the defaults); a smaller struct_size from an older header
 * leaves the fields past it at their defaults. */
typedef struct kiln_session_options {
  size_t struct_size;
  /* Tokens (past + new) the KV cache of kiln_session_step holds; 0: the
   * model's default, its plan's bound of the total length (4096 when the
   * past and sequence symbols have the default bound 2048). */
  int64_t kv_capacity;
} kiln_session_options;

/* The message of the last failed call on this thread ("" if none failed).
 * Valid until the next failing call on the same thread. */
KILN_API const char *kiln_last_error(void);

/* "f32", "i64", ...; "invalid" for a value outside kiln_dtype. */
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);
/* Bytes per element; 0 for an invalid dtype. */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);

/* Maps and validates the artifact at `path`; *out is set on success. */
KILN_API kiln_status kiln_model_load(const char *path, kiln_model **out);
/* Frees the model handle; sessions created from it stay valid. NULL is a no-op. */
KILN_API void kiln_model_free(kiln_model *model);

KILN_API size_t kiln_model_num_inputs(const kiln_model *model);
KILN_API size_t kiln_model_num_outputs(const kiln_model *model);
/* Fills *out with the index-th input (output), in graph order; the strings
 * and arrays live as long as the model. */
KILN_API kiln_status kiln_model_input(const kiln_model *model, size_t index, kiln_value_info *out);
KILN_API kiln_status kiln_model_output(const kiln_model *model, size_t index, kiln_value_info *out);

/* A decoder's KV pairs: (past input, present output) names, a key and a
 * value pair per layer, in graph order. kiln_session_step feeds the inputs
 * from the session's KV cache and keeps the outputs there; 0 pairs: the
 * model cannot be stepped. Strings live as long as the model. */
KILN_API size_t kiln_model_num_kv_pairs(const kiln_model *model);
KILN_API kiln_status kiln_model_kv_pair(const kiln_model *model, size_t index, const char **input_name,
                                        const char **output_name);

/* A session owns the memory one run needs (an arena of the model's planned
 * size, reserved at the first run); options may be NULL. */
KILN_API kiln_status kiln_session_create(const kiln_model *model, const kiln_session_options *options,
                                         kiln_session **out);
/* NULL is a no-op; output data of the last run becomes invalid. */
KILN_API void kiln_session_free(kiln_session *session);

/* Runs the model. `inputs` holds one tensor per model input, matched by name
 * in any order. n_outputs must equal kiln_model_num_outputs; outputs[i] is
 * filled with the i-th output in graph order; its data lies in the session's
 * arena. After KILN_ERROR_RUN the previous run's output data may have been
 * overwritten; after KILN_ERROR_INVALID_ARGUMENT it is untouched. */
KILN_API kiln_status kiln_session_run(kiln_session *session, const kiln_tensor *inputs, size_t n_inputs,
                                      kiln_tensor *outputs, size_t n_outputs);

/* One decoder step with the session's KV cache (docs/kv-cache.md).
 * `inputs`: every model input but the KV pairs' past inputs, by name
 * (input_ids, ...). n_outputs must equal kiln_model_num_outputs minus
 * kiln_model_num_kv_pairs; outputs[i] is the i-th output that is not a
 * present output, in graph order (logits, ...), valid as kiln_session_run's.
 * The past is the cache's kiln_session_kv_length tokens; the step appends
 * its new tokens' keys and values to the cache in place and the length
 * grows by them. KILN_ERROR_KV_CACHE_FULL when past + new tokens exceed the
 * capacity, KILN_ERROR_INVALID_ARGUMENT for bad inputs or a model without
 * KV pairs: both before running, the cache and length unchanged. After
 * KILN_ERROR_RUN the length is unchanged too. kiln_session_run never
 * touches the cache. */
KILN_API kiln_status kiln_session_step(kiln_session *session, const kiln_tensor *inputs, size_t n_inputs,
                                       kiln_tensor *outputs, size_t n_outputs);
/* Forgets the cached tokens (the next step starts a new sequence); the
 * cache keeps its memory. */
KILN_API kiln_status kiln_session_reset(kiln_session *session);
/* Tokens in the KV cache, and how many it holds; 0 for NULL. */
KILN_API int64_t kiln_session_kv_length(const kiln_session *session);
KILN_API int64_t kiln_session_kv_capacity(const kiln_session *session);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H_ */
