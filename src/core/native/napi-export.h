/*
 * napi-export.h: how jobworker's Node-API addons (src/memory/native/malloc-trim.c,
 * src/api/rest/native/send-file.c, src/output/native/file-sizes.c) export their functions.
 * scripts/build-native.sh rebuilds an addon when this file is newer than it, as it does when the
 * addon's own source is.
 */
#ifndef JOBWORKER_NAPI_EXPORT_H
#define JOBWORKER_NAPI_EXPORT_H

#include <node_api.h>

/* Sets exports[name] to a function that calls `fn`; 0 when Node-API refused (an exception is then pending). */
static inline int export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, value) == napi_ok;
}

#endif
