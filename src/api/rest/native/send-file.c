/*
 * send-file.node: sendFile(socketFd, fileFd, position, length) copies a stretch of a file to a
 * socket inside the kernel (sendfile(2)) on a thread of libuv's pool, and resolves with
 * { sent, full, errno }; duplicate(fd) gives the caller a descriptor of its own for a socket.
 *
 * Why: a catch-up read of a finished job's output is the server copying a file to a socket. From
 * JavaScript that is three copies (page cache to a buffer, the buffer to the socket, and the
 * client's read): ~2 GB/s here against `cat`'s 5 GB/s. sendfile(2) leaves out the first two,
 * and Node does not expose it (see docs/performance.md). Built by scripts/build-native.sh against
 * Node-API only and loaded by src/api/rest/send-file.ts; without it the server reads into
 * pooled pages as before.
 *
 * The socket stays non-blocking (it is Node's). When it is full the copy waits for room in the
 * pool thread, but for WAIT_MS at most in all: a client that reads as fast as it is sent is
 * served without a trip back to the event loop per socket buffer, while a slow one holds a pool
 * thread no longer than that; the copy then stops with `full` set, and the caller waits for room
 * through Node and calls again. The caller must keep both descriptors open until the promise settles, and
 * passes a duplicate of the socket's, not Node's own: Node may close its descriptor at any time
 * (the client reset the connection, the server closes), and a copy still queued for a pool thread
 * would then write into whatever file next got that number.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/types.h>
#include <time.h>

/* The longest a copy waits for room in the socket, in all, before it hands the wait to Node. */
#define WAIT_MS 20

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int socket_fd;
  int file_fd;
  int64_t position;
  int64_t length;
  /* Results, written by the pool thread and read once it is done. */
  int64_t sent;
  int full;
  int error;
} copy_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_in_pool(napi_env env, void *data) {
  (void)env;
  copy_t *copy = data;
  off_t offset = (off_t)copy->position;
  int64_t deadline = now_ms() + WAIT_MS;
  while (copy->sent < copy->length) {
    ssize_t n = sendfile(copy->socket_fd, copy->file_fd, &offset, (size_t)(copy->length - copy->sent));
    if (n > 0) {
      copy->sent += n;
      continue;
    }
    if (n == 0) break; /* the file ended: the caller tells it from a full socket */
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int64_t left = deadline - now_ms();
      struct pollfd room = {.fd = copy->socket_fd, .events = POLLOUT};
      /* Room again (or an error, which the next sendfile reports): go on. */
      if (left > 0 && poll(&room, 1, (int)left) > 0) continue;
      copy->full = 1;
      break;
    }
    copy->error = errno;
    break;
  }
}

static int set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  return napi_create_double(env, value, &v) == napi_ok &&
         napi_set_named_property(env, object, name, v) == napi_ok;
}

static void settle_on_loop(napi_env env, napi_status status, void *data) {
  copy_t *copy = data;
  napi_value result;
  if (status == napi_ok && napi_create_object(env, &result) == napi_ok &&
      set_number(env, result, "sent", (double)copy->sent) &&
      set_number(env, result, "errno", copy->error)) {
    napi_value full;
    napi_get_boolean(env, copy->full != 0, &full);
    napi_set_named_property(env, result, "full", full);
    napi_resolve_deferred(env, copy->deferred, result);
  } else {
    napi_value message, error;
    napi_create_string_utf8(env, "sendFile: the copy could not be completed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, copy->deferred, error);
  }
  napi_delete_async_work(env, copy->work);
  free(copy);
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value send_file(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) return throw_type_error(env, "sendFile(socketFd, fileFd, position, length)");
  int32_t socket_fd, file_fd;
  int64_t position, length;
  if (napi_get_value_int32(env, argv[0], &socket_fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &file_fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &position) != napi_ok ||
      napi_get_value_int64(env, argv[3], &length) != napi_ok)
    return throw_type_error(env, "sendFile: expected four numbers");
  if (socket_fd < 0 || file_fd < 0 || position < 0 || length < 0)
    return throw_type_error(env, "sendFile: descriptors, position and length must not be negative");
  copy_t *copy = calloc(1, sizeof *copy);
  if (copy == NULL) return throw_type_error(env, "sendFile: out of memory");
  copy->socket_fd = socket_fd;
  copy->file_fd = file_fd;
  copy->position = position;
  copy->length = length;
  napi_value promise, name;
  if (napi_create_promise(env, &copy->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "jobworker:sendFile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, copy_in_pool, settle_on_loop, copy, &copy->work) != napi_ok) {
    free(copy);
    return throw_type_error(env, "sendFile: could not queue the copy");
  }
  if (napi_queue_async_work(env, copy->work) != napi_ok) {
    napi_delete_async_work(env, copy->work);
    free(copy);
    return throw_type_error(env, "sendFile: could not queue the copy");
  }
  return promise;
}

/* duplicate(fd): a new descriptor of the same open file, closed on exec, or -errno. */
static napi_value duplicate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok)
    return throw_type_error(env, "duplicate(fd): expected a number");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  napi_value result;
  if (napi_create_int32(env, copy < 0 ? -errno : copy, &result) != napi_ok) return NULL;
  return result;
}

static int export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, value) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "sendFile", send_file)) return NULL;
  if (!export_function(env, exports, "duplicate", duplicate)) return NULL;
  return exports;
}
