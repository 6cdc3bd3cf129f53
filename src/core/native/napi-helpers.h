/*
 * napi-helpers.h: what jobworker's Node-API addons (src/memory/native/malloc-trim.c,
 * src/api/rest/native/send-file.c, src/output/native/file-sizes.c) share: exporting a function,
 * rejecting a promise, and queueing work on libuv's pool behind a promise. scripts/build-native.sh
 * rebuilds an addon when this file is newer than it, as it does when the addon's own source is.
 */
#ifndef JOBWORKER_NAPI_HELPERS_H
#define JOBWORKER_NAPI_HELPERS_H

#include <node_api.h>

/* Sets exports[name] to a function that calls `fn`; 0 when Node-API refused (an exception is then pending). */
static inline int export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, value) == napi_ok;
}

/*
 * Rejects `deferred` with the exception a failed Node-API call left pending, or else with an Error
 * of `message`. A pending exception must be taken first: while one is, napi_reject_deferred fails
 * and the promise would never settle.
 */
static inline void reject_with(napi_env env, napi_deferred deferred, const char *message) {
  napi_value text, error;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending ||
      napi_get_and_clear_last_exception(env, &error) != napi_ok) {
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, NULL, text, &error);
  }
  napi_reject_deferred(env, deferred, error);
}

/*
 * Queues `execute` on a thread of libuv's pool, then `complete` on the event loop, both given
 * `data`, and returns the promise that `complete` settles through *deferred. *queued says whom
 * `data` belongs to: 1, the work's (`complete` frees it and deletes *work); 0, still the caller's
 * to free. When the work or the promise cannot be made: NULL, with an Error of `failure` thrown.
 * When it cannot be queued: the promise, rejected with one. The work is made before the promise:
 * a promise made before a failure to make the work would never be settled.
 */
static inline napi_value queue_in_pool(napi_env env, const char *name, napi_async_execute_callback execute,
                                       napi_async_complete_callback complete, void *data, napi_async_work *work,
                                       napi_deferred *deferred, const char *failure, int *queued) {
  napi_value resource, promise;
  *queued = 0;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
      napi_create_async_work(env, NULL, resource, execute, complete, data, work) != napi_ok) {
    napi_throw_error(env, NULL, failure);
    return NULL;
  }
  if (napi_create_promise(env, deferred, &promise) != napi_ok) {
    napi_delete_async_work(env, *work);
    napi_throw_error(env, NULL, failure);
    return NULL;
  }
  if (napi_queue_async_work(env, *work) != napi_ok) {
    reject_with(env, *deferred, failure);
    napi_delete_async_work(env, *work);
    return promise;
  }
  *queued = 1;
  return promise;
}

#endif
