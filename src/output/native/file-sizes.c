/*
 * file-sizes.node: fileSizes(dirs, names) stats every file `dir/name` on a thread of libuv's pool
 * and resolves with a Float64Array of their sizes, dir by dir (dirs[i]/names[j] at
 * i * names.length + j); a file that cannot be stat'ed gives -errno instead (-ENOENT: it is not
 * there).
 *
 * Why: the output monitor's sweep observes the running jobs nobody follows by the sizes of their
 * two stream files. With thousands running that is thousands of stats a second, and each
 * fs.statSync on the event loop costs far more than its system call (the path's checks, a Stats
 * object): with 4,000 jobs running they were 18 % of the main thread's profile while it started
 * jobs. One call per sweep moves the system calls to the pool and leaves the event loop one
 * string per job to hand over and one array to read back. fs.promises.stat would move them too,
 * but at a request, a promise and a Stats object per file. Built by scripts/build-native.sh
 * against Node-API only and loaded by src/output/batch-sizes.ts; without it the sweep stats on
 * the event loop as before.
 */
#define _POSIX_C_SOURCE 200809L
/* 64-bit sizes everywhere: a file past 4 GiB must not wrap on a 32-bit build. */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <limits.h>
#include <node_api.h>
#include "../../core/native/napi-helpers.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(sizeof(off_t) == 8, "file-sizes.c needs 64-bit file sizes");

/* The most strings one call takes: bounds the memory it copies and how long it holds a pool thread. */
#define MAX_DIRS 65536
#define MAX_NAMES 16

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  size_t dir_count;
  size_t name_count;
  /* Each string's start in `text`, dirs first then names, each NUL-terminated. */
  size_t *starts;
  char *text;
  /* Results: dir_count * name_count of them, written by the pool thread. */
  double *sizes;
} batch_t;

static void free_batch(batch_t *batch) {
  free(batch->starts);
  free(batch->text);
  free(batch->sizes);
  free(batch);
}

static void stat_in_pool(napi_env env, void *data) {
  (void)env;
  batch_t *batch = data;
  char path[PATH_MAX];
  for (size_t i = 0; i < batch->dir_count; i++) {
    const char *dir = batch->text + batch->starts[i];
    for (size_t j = 0; j < batch->name_count; j++) {
      const char *name = batch->text + batch->starts[batch->dir_count + j];
      double *out = &batch->sizes[i * batch->name_count + j];
      int length = snprintf(path, sizeof path, "%s/%s", dir, name);
      struct stat st;
      if (length < 0 || (size_t)length >= sizeof path)
        *out = -ENAMETOOLONG;
      else if (stat(path, &st) != 0)
        *out = -(double)errno;
      else
        *out = (double)st.st_size;
    }
  }
}

/* Settles a batch's promise with an error (`reject_with`), and frees the batch. */
static void reject_and_free(napi_env env, batch_t *batch, const char *message) {
  reject_with(env, batch->deferred, message);
  napi_delete_async_work(env, batch->work);
  free_batch(batch);
}

static void settle_on_loop(napi_env env, napi_status status, void *data) {
  batch_t *batch = data;
  size_t count = batch->dir_count * batch->name_count;
  void *bytes;
  napi_value buffer, array;
  if (status == napi_ok && napi_create_arraybuffer(env, count * sizeof(double), &bytes, &buffer) == napi_ok &&
      napi_create_typedarray(env, napi_float64_array, count, buffer, 0, &array) == napi_ok) {
    if (count > 0) memcpy(bytes, batch->sizes, count * sizeof(double));
    napi_resolve_deferred(env, batch->deferred, array);
    napi_delete_async_work(env, batch->work);
    free_batch(batch);
    return;
  }
  reject_and_free(env, batch, "fileSizes: the sizes could not be handed back");
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* The length of an array of at most `max` elements, or 0 with a TypeError pending. */
static int array_length(napi_env env, napi_value value, uint32_t max, uint32_t *length) {
  bool is_array;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, value, length) != napi_ok || *length > max)
    return 0;
  return 1;
}

/*
 * Copies the strings of `array` (which must all be non-empty strings without NUL) into
 * batch->text from *used on, recording their starts from starts[first]. 0 when one is not such a
 * string.
 */
static int copy_strings(napi_env env, napi_value array, uint32_t count, batch_t *batch, size_t first,
                        size_t *used, size_t *capacity) {
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    size_t length;
    if (napi_get_element(env, array, i, &element) != napi_ok ||
        napi_get_value_string_utf8(env, element, NULL, 0, &length) != napi_ok)
      return 0;
    if (*used + length + 1 > *capacity) {
      size_t grown = (*capacity + length + 1) * 2;
      char *text = realloc(batch->text, grown);
      if (text == NULL) return 0;
      batch->text = text;
      *capacity = grown;
    }
    size_t copied;
    if (napi_get_value_string_utf8(env, element, batch->text + *used, length + 1, &copied) != napi_ok)
      return 0;
    /* A NUL inside would cut the path short and stat another file; an empty one, another too. */
    if (copied == 0 || strlen(batch->text + *used) != copied) return 0;
    batch->starts[first + i] = *used;
    *used += copied + 1;
  }
  return 1;
}

static napi_value file_sizes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  uint32_t dir_count, name_count;
  if (argc < 2 || !array_length(env, argv[0], MAX_DIRS, &dir_count) ||
      !array_length(env, argv[1], MAX_NAMES, &name_count))
    return throw_type_error(env,
                            "fileSizes(dirs, names): expected two arrays of strings, at most 65536 and 16 of them");
  batch_t *batch = calloc(1, sizeof *batch);
  size_t capacity = (size_t)(dir_count + name_count) * 64 + 1, used = 0;
  if (batch != NULL) {
    batch->dir_count = dir_count;
    batch->name_count = name_count;
    batch->starts = malloc((dir_count + name_count + 1) * sizeof *batch->starts);
    batch->text = malloc(capacity);
    batch->sizes = malloc(((size_t)dir_count * name_count + 1) * sizeof *batch->sizes);
  }
  if (batch == NULL || batch->starts == NULL || batch->text == NULL || batch->sizes == NULL) {
    if (batch != NULL) free_batch(batch);
    napi_throw_error(env, NULL, "fileSizes: out of memory");
    return NULL;
  }
  if (!copy_strings(env, argv[0], dir_count, batch, 0, &used, &capacity) ||
      !copy_strings(env, argv[1], name_count, batch, dir_count, &used, &capacity)) {
    free_batch(batch);
    /* Node-API may have left its own exception (a getter that threw): that one says more. */
    bool pending;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return NULL;
    return throw_type_error(env, "fileSizes(dirs, names): every element must be a non-empty string without NUL");
  }
  int queued;
  napi_value promise = queue_in_pool(env, "jobworker:fileSizes", stat_in_pool, settle_on_loop, batch, &batch->work,
                                     &batch->deferred, "fileSizes: could not queue the stats", &queued);
  if (!queued) free_batch(batch);
  return promise;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "fileSizes", file_sizes)) return NULL;
  return exports;
}
