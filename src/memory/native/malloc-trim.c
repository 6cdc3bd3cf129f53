/*
 * malloc-trim.node: one Node-API function, trim(), that asks glibc's malloc to give the free
 * memory inside its heaps back to the system (malloc_trim(3)), and answers whether any was.
 *
 * Why: glibc gives a heap back only from its top. The server frees most of what a burst of jobs
 * allocated (V8's array buffers, libuv's requests, SQLite's pages...), but one block still in use
 * near the top keeps everything below it resident: 10,000 finished jobs left the idle server
 * ~24 MB of free-but-resident malloc memory, which malloc_trim(0) gave back at once (it releases
 * whole free pages anywhere in every arena with madvise). Node has no way to call it, and a
 * helper process cannot do it for us, hence this file. It is built by scripts/build-native.sh
 * against Node-API only (stable across Node versions) and loaded by src/memory/malloc-trim.ts;
 * without it, or off glibc, the server runs as before.
 */
#include <node_api.h>
#include "../../core/native/napi-helpers.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#ifdef __GLIBC__
  /* 0: keep no pad at the top; the heap grows again on demand. */
  released = malloc_trim(0) != 0;
#endif
  napi_value result;
  if (napi_get_boolean(env, released, &result) != napi_ok) return NULL;
  return result;
}

static napi_value available(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  bool yes = true;
#else
  bool yes = false;
#endif
  napi_value result;
  if (napi_get_boolean(env, yes, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "trim", trim)) return NULL;
  if (!export_function(env, exports, "available", available)) return NULL;
  return exports;
}
