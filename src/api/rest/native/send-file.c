/*
 * send-file.node: sendFile(socketFd, fileFd, position, length) copies a stretch of a file to a
 * socket inside the kernel (sendfile(2)) on a thread of libuv's pool, and resolves with
 * { sent, full, errno }; duplicate(fd) gives the caller a descriptor of its own for a socket;
 * widenSendBuffer(fd, bytes) gives a Unix socket a larger send buffer for such copies.
 *
 * Why: a catch-up read of a finished job's output is the server copying a file to a socket. From
 * JavaScript that is three copies (page cache to a buffer, the buffer to the socket, and the
 * client's read): ~2 GB/s here against `cat`'s 5 GB/s. sendfile(2) leaves out the first two,
 * and Node does not expose it (see docs/performance.md). Built by scripts/build-native.sh against
 * Node-API only and loaded by src/api/rest/send-file.ts; without it the server reads into
 * pooled pages as before.
 *
 * The socket stays non-blocking (it is Node's): the copy stops at the first EAGAIN with `full`
 * set, and the caller waits for room through Node and calls again. It never waits in the pool
 * thread: libuv's pool has four threads shared with every file operation of the server, and a
 * few slow clients waiting there would hold up all of them (a wait of 20 ms per copy, tried,
 * took the p99 of an fs.stat from 0.6 to 50 ms with 16 slow readers). The caller must keep both descriptors open until the promise settles, and
 * passes a duplicate of the socket's, not Node's own: Node may close its descriptor at any time
 * (the client reset the connection, the server closes), and a copy still queued for a pool thread
 * would then write into whatever file next got that number.
 */
#define _POSIX_C_SOURCE 200809L
/* 64-bit file offsets everywhere: a position past 4 GiB must not wrap on a 32-bit build. */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include "../../../core/native/napi-helpers.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

_Static_assert(sizeof(off_t) == 8, "send-file.c needs 64-bit file offsets");

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

static void copy_in_pool(napi_env env, void *data) {
  (void)env;
  copy_t *copy = data;
  off_t offset = (off_t)copy->position;
  while (copy->sent < copy->length) {
    ssize_t n = sendfile(copy->socket_fd, copy->file_fd, &offset, (size_t)(copy->length - copy->sent));
    if (n > 0) {
      copy->sent += n;
      continue;
    }
    if (n == 0) break; /* the file ended: the caller tells it from a full socket */
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
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

/* Settles a copy's promise with an error (`reject_with`), and frees the copy. */
static void reject_and_free(napi_env env, copy_t *copy, const char *message) {
  reject_with(env, copy->deferred, message);
  napi_delete_async_work(env, copy->work);
  free(copy);
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
    napi_delete_async_work(env, copy->work);
    free(copy);
    return;
  }
  reject_and_free(env, copy, "sendFile: the copy could not be completed");
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* A whole number from 0 to max, exactly (no NaN, no fraction, no wrap past 32 bits): else 0. */
static int whole_number(napi_env env, napi_value value, double max, int64_t *out) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok) return 0;
  if (!(number >= 0 && number <= max) || (double)(int64_t)number != number) return 0;
  *out = (int64_t)number;
  return 1;
}

/* 2^53 - 1: the largest position or length a JavaScript number holds exactly. */
#define MAX_SAFE 9007199254740991.0

static napi_value send_file(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) return throw_type_error(env, "sendFile(socketFd, fileFd, position, length)");
  int64_t socket_fd, file_fd, position, length;
  if (!whole_number(env, argv[0], 2147483647.0, &socket_fd) ||
      !whole_number(env, argv[1], 2147483647.0, &file_fd) ||
      !whole_number(env, argv[2], MAX_SAFE, &position) || !whole_number(env, argv[3], MAX_SAFE, &length))
    return throw_type_error(env,
                            "sendFile: expected descriptors, a position and a length that are whole numbers from 0");
  copy_t *copy = calloc(1, sizeof *copy);
  if (copy == NULL) {
    napi_throw_error(env, NULL, "sendFile: out of memory");
    return NULL;
  }
  copy->socket_fd = (int)socket_fd;
  copy->file_fd = (int)file_fd;
  copy->position = position;
  copy->length = length;
  int queued;
  napi_value promise = queue_in_pool(env, "jobworker:sendFile", copy_in_pool, settle_on_loop, copy, &copy->work,
                                     &copy->deferred, "sendFile: could not queue the copy", &queued);
  if (!queued) free(copy);
  return promise;
}

/* duplicate(fd): a new descriptor of the same open file, closed on exec, or -errno. */
static napi_value duplicate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t whole;
  if (argc < 1 || !whole_number(env, argv[0], 2147483647.0, &whole))
    return throw_type_error(env, "duplicate(fd): expected a descriptor, a whole number from 0");
  fd = (int32_t)whole;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  napi_value result;
  if (napi_create_int32(env, copy < 0 ? -errno : copy, &result) != napi_ok) return NULL;
  return result;
}

/*
 * net.core.wmem_max, the most of a send buffer the kernel keeps when asked (it doubles what it
 * keeps, for its own bookkeeping); read once, -1 when it cannot be read.
 */
static int64_t send_buffer_max(void) {
  static int64_t max = -2;
  if (max != -2) return max;
  max = -1;
  int fd = open("/proc/sys/net/core/wmem_max", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return max;
  char text[32];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return max;
  text[n] = '\0';
  char *end;
  long long value = strtoll(text, &end, 10);
  if (end != text && value > 0) max = value;
  return max;
}

/*
 * widenSendBuffer(fd, bytes): asks the kernel for a send buffer of `bytes` on a Unix stream socket,
 * and returns the size the socket then has; 0 for any other socket, left as it is; -errno when
 * the socket cannot be asked. The kernel keeps at most net.core.wmem_max and doubles what it
 * keeps, so the call is made only when that would be larger than what the socket has: a buffer
 * is never made smaller (wmem_default, what a socket starts with, may be above wmem_max), nor
 * touched at all when wmem_max cannot be read. `bytes` 0 reads the size and changes nothing.
 *
 * Why: a Unix socket's buffer (wmem_default, 208 KiB on most hosts) is what one copy can put in
 * before the client has to read and the copy has to wait (a round through the pool and Node, see
 * send-file.ts). 1 GiB to a reader of 1 MiB a read, measured with sendfile(2) here: 2.4-2.9 GB/s
 * with the default, 4.6-5.1 with 2 MiB asked (a 4 MiB buffer). TCP sizes its own buffers as the
 * connection goes (setting one turns that off, and gained nothing on loopback): left alone.
 */
static napi_value widen_send_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t fd, bytes;
  if (argc < 2 || !whole_number(env, argv[0], 2147483647.0, &fd) || !whole_number(env, argv[1], 1073741824.0, &bytes))
    return throw_type_error(
        env, "widenSendBuffer(fd, bytes): expected a descriptor, and a size in bytes from 0 to 1 GiB, whole numbers");
  struct sockaddr_storage address = {0};
  socklen_t len = sizeof address;
  int type = 0, size = 0;
  int result;
  if (getsockname((int)fd, (struct sockaddr *)&address, &len) != 0) {
    result = -errno;
  } else if (len = sizeof type, getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    result = -errno;
  } else if (address.ss_family != AF_UNIX || type != SOCK_STREAM) {
    result = 0;
  } else if (len = sizeof size, getsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &size, &len) != 0) {
    result = -errno;
  } else {
    int64_t max = send_buffer_max();
    int64_t kept = max < 0 ? 0 : 2 * (bytes < max ? bytes : max);
    result = size;
    if (kept > size) {
      int wanted = (int)(bytes < max ? bytes : max);
      if (setsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted) != 0 ||
          (len = sizeof size, getsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &size, &len) != 0))
        result = -errno;
      else
        result = size;
    }
  }
  napi_value value;
  if (napi_create_int32(env, result, &value) != napi_ok) return NULL;
  return value;
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "sendFile", send_file)) return NULL;
  if (!export_function(env, exports, "duplicate", duplicate)) return NULL;
  if (!export_function(env, exports, "widenSendBuffer", widen_send_buffer)) return NULL;
  return exports;
}
