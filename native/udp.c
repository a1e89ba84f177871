/*
 * Batched UDP socket I/O for burrow on Linux: recvmmsg(2) and sendmmsg(2), so a datagram costs
 * a slot in a batch instead of a system call and a JavaScript callback of its own.
 *
 * A socket is a non-blocking fd watched by a uv_poll_t on Node's own loop. When it is readable,
 * up to `vlen` datagrams are read into fixed slots of the caller's receive buffer and the
 * caller's callback runs once for the batch, with the count (or -errno); per datagram a
 * 24-byte record in the caller's meta buffer gives its length and source:
 *   [0..3] length (little-endian), [4..5] port (network order), [6] family (4 or 6),
 *   [7] flags (1 = truncated), [8..23] address (4 or 16 bytes).
 * Sends take one buffer of datagrams laid end to end and the same records (the address is
 * ignored on connected sockets, family 0), and return how many left (or -errno).
 * The slots are reused by the next batch: what the callback keeps, it copies.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define META 24
#define MAX_VLEN 1024
/* Batches read per wake-up at most, so that one busy socket does not starve the loop. */
#define MAX_BATCHES 4

typedef struct {
  uv_poll_t poll;
  int fd;
  int family;
  napi_env env;
  napi_ref self;
  napi_ref cb;
  napi_ref buf_ref;
  napi_ref meta_ref;
  napi_async_context actx;
  char *buf;
  size_t slot;
  unsigned vlen;
  uint8_t *meta;
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_in6 *addrs;
  int polling;
  int closed;
} sock_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "native udp: " #call " failed");                                 \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, -err, &code);
  napi_set_named_property(env, e, "errno", code);
  napi_throw(env, e);
  return NULL;
}

static sock_t *get_sock(napi_env env, napi_value v) {
  sock_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, NULL, "native udp: not a socket");
    return NULL;
  }
  if (s->closed) {
    napi_throw_error(env, NULL, "native udp: socket closed");
    return NULL;
  }
  return s;
}

static void free_sock(sock_t *s) {
  free(s->msgs);
  free(s->iovs);
  free(s->addrs);
  free(s);
}

static void finalize_sock(napi_env env, void *data, void *hint) {
  sock_t *s = data;
  /* Reached only once JS holds no reference; close() has run (the wrapper always calls it),
   * or the process is going away. */
  if (!s->closed) {
    s->closed = 1;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
  }
  if (!s->polling) free_sock(s);
}

/* open(ipv6, rcvbuf, sndbuf) -> socket */
static napi_value sock_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool v6 = false;
  int32_t rcv = 0, snd = 0;
  CHECK(napi_get_value_bool(env, argv[0], &v6));
  CHECK(napi_get_value_int32(env, argv[1], &rcv));
  CHECK(napi_get_value_int32(env, argv[2], &snd));
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (rcv > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  if (snd > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->fd = fd;
  s->family = v6 ? AF_INET6 : AF_INET;
  s->env = env;
  napi_value ext;
  if (napi_create_external(env, s, finalize_sock, NULL, &ext) != napi_ok) {
    close(fd);
    free(s);
    napi_throw_error(env, NULL, "native udp: napi_create_external failed");
    return NULL;
  }
  return ext;
}

static int to_sockaddr(sock_t *s, const char *ip, int port, struct sockaddr_in6 *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  if (s->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
    return 0;
  }
  out->sin6_family = AF_INET6;
  out->sin6_port = htons((uint16_t)port);
  if (inet_pton(AF_INET6, ip, &out->sin6_addr) != 1) {
    /* An IPv4 literal on an IPv6 socket: its mapped form. */
    struct in_addr v4;
    if (inet_pton(AF_INET, ip, &v4) != 1) return -1;
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &v4, 4);
  }
  *len = sizeof *out;
  return 0;
}

/* bind(sock, ip, port, connect) : binds, or connects when `connect` is true */
static napi_value sock_bind(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  char ip[64];
  size_t iplen;
  int32_t port;
  bool conn;
  CHECK(napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, &iplen));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &conn));
  struct sockaddr_in6 sa;
  socklen_t len;
  if (to_sockaddr(s, ip, port, &sa, &len) != 0) return throw_errno(env, conn ? "connect" : "bind", EINVAL);
  if (s->family == AF_INET6 && !conn) {
    int off = 0;
    setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  int r = conn ? connect(s->fd, (struct sockaddr *)&sa, len) : bind(s->fd, (struct sockaddr *)&sa, len);
  if (r != 0) return throw_errno(env, conn ? "connect" : "bind", errno);
  return NULL;
}

static void write_addr(uint8_t *m, const struct sockaddr_in6 *sa) {
  if (sa->sin6_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    memcpy(m + 4, &a->sin_port, 2);
    m[6] = 4;
    memcpy(m + 8, &a->sin_addr, 4);
    memset(m + 12, 0, 12);
  } else {
    memcpy(m + 4, &sa->sin6_port, 2);
    m[6] = 6;
    memcpy(m + 8, &sa->sin6_addr, 16);
  }
}

/* local(sock) -> Buffer(24) record of the bound address, or sockname's when `peer` */
static napi_value sock_local(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_in6 sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(s->fd, (struct sockaddr *)&sa, &len) != 0) return throw_errno(env, "getsockname", errno);
  void *data;
  napi_value out;
  CHECK(napi_create_buffer(env, META, &data, &out));
  memset(data, 0, META);
  write_addr(data, &sa);
  return out;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sock_t *s = (sock_t *)h;
  napi_env env = s->env;
  for (int batch = 0; batch < MAX_BATCHES && !s->closed && s->polling; batch++) {
    int n;
    if (status < 0) {
      n = status;
    } else {
      for (unsigned i = 0; i < s->vlen; i++) {
        s->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        s->msgs[i].msg_hdr.msg_flags = 0;
      }
      do
        n = recvmmsg(s->fd, s->msgs, s->vlen, MSG_DONTWAIT, NULL);
      while (n < 0 && errno == EINTR);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        n = -errno;
      } else if (n == 0) {
        return;
      }
      for (int i = 0; i < n; i++) {
        uint8_t *m = s->meta + (size_t)i * META;
        uint32_t l = s->msgs[i].msg_len;
        m[0] = l & 0xff;
        m[1] = (l >> 8) & 0xff;
        m[2] = (l >> 16) & 0xff;
        m[3] = (l >> 24) & 0xff;
        write_addr(m, &s->addrs[i]);
        m[7] = (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
      }
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value cb, recv, arg, result;
    napi_get_reference_value(env, s->cb, &cb);
    napi_get_global(env, &recv);
    napi_create_int32(env, n, &arg);
    napi_status st = napi_make_callback(env, s->actx, recv, cb, 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
    napi_close_handle_scope(env, scope);
    if (n < 0 || (unsigned)n < s->vlen) return;
    status = 0;
  }
}

/* start(sock, buf, slot, meta, cb): reads into `buf` (vlen slots of `slot` bytes) */
static napi_value sock_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (s->polling) {
    napi_throw_error(env, NULL, "native udp: already reading");
    return NULL;
  }
  void *buf, *meta;
  size_t buflen, metalen;
  uint32_t slot;
  CHECK(napi_get_buffer_info(env, argv[1], &buf, &buflen));
  CHECK(napi_get_value_uint32(env, argv[2], &slot));
  CHECK(napi_get_buffer_info(env, argv[3], &meta, &metalen));
  if (slot == 0 || buflen / slot == 0 || metalen / META < buflen / slot) {
    napi_throw_range_error(env, NULL, "native udp: buffers too small");
    return NULL;
  }
  unsigned vlen = (unsigned)(buflen / slot);
  if (vlen > MAX_VLEN) vlen = MAX_VLEN;
  s->msgs = calloc(vlen, sizeof *s->msgs);
  s->iovs = calloc(vlen, sizeof *s->iovs);
  s->addrs = calloc(vlen, sizeof *s->addrs);
  if (!s->msgs || !s->iovs || !s->addrs) return throw_errno(env, "calloc", ENOMEM);
  s->buf = buf;
  s->slot = slot;
  s->vlen = vlen;
  s->meta = meta;
  for (unsigned i = 0; i < vlen; i++) {
    s->iovs[i].iov_base = s->buf + (size_t)i * slot;
    s->iovs[i].iov_len = slot;
    s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
  }
  CHECK(napi_create_reference(env, argv[0], 1, &s->self));
  CHECK(napi_create_reference(env, argv[1], 1, &s->buf_ref));
  CHECK(napi_create_reference(env, argv[3], 1, &s->meta_ref));
  CHECK(napi_create_reference(env, argv[4], 1, &s->cb));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "burrow:udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &s->actx));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init(loop, &s->poll, s->fd) != 0) {
    napi_throw_error(env, NULL, "native udp: uv_poll_init failed");
    return NULL;
  }
  s->polling = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  return NULL;
}

/* Fills msgs[i] with a destination from a 24-byte record (family 4 or 6), as send does. */
static void set_dest(sock_t *s, struct mmsghdr *msg, struct sockaddr_in6 *sa, const uint8_t *m) {
  memset(sa, 0, sizeof *sa);
  if (s->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)sa;
    a->sin_family = AF_INET;
    memcpy(&a->sin_port, m + 4, 2);
    memcpy(&a->sin_addr, m + 8, 4);
    msg->msg_hdr.msg_namelen = sizeof *a;
  } else {
    sa->sin6_family = AF_INET6;
    memcpy(&sa->sin6_port, m + 4, 2);
    if (m[6] == 4) {
      sa->sin6_addr.s6_addr[10] = 0xff;
      sa->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&sa->sin6_addr.s6_addr[12], m + 8, 4);
    } else {
      memcpy(&sa->sin6_addr, m + 8, 16);
    }
    msg->msg_hdr.msg_namelen = sizeof *sa;
  }
  msg->msg_hdr.msg_name = sa;
}

/* send(sock, buf, meta, count) -> datagrams sent, or -errno of the first failure that is not a
 * full buffer (EAGAIN, ENOBUFS). A datagram that fails is dropped, as UDP drops; the rest go. */
#define SEND_MAX 256
static napi_value sock_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  char *buf;
  uint8_t *meta;
  size_t buflen, metalen;
  uint32_t count;
  CHECK(napi_get_buffer_info(env, argv[1], (void **)&buf, &buflen));
  CHECK(napi_get_buffer_info(env, argv[2], (void **)&meta, &metalen));
  CHECK(napi_get_value_uint32(env, argv[3], &count));
  if (count > SEND_MAX || (size_t)count * META > metalen) {
    napi_throw_range_error(env, NULL, "native udp: too many datagrams for one send");
    return NULL;
  }
  struct mmsghdr msgs[SEND_MAX];
  struct iovec iovs[SEND_MAX];
  struct sockaddr_in6 addrs[SEND_MAX];
  size_t off = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *m = meta + (size_t)i * META;
    uint32_t l = (uint32_t)m[0] | ((uint32_t)m[1] << 8) | ((uint32_t)m[2] << 16) | ((uint32_t)m[3] << 24);
    if (off + l > buflen) {
      napi_throw_range_error(env, NULL, "native udp: datagram beyond the buffer");
      return NULL;
    }
    iovs[i].iov_base = buf + off;
    iovs[i].iov_len = l;
    off += l;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (m[6] == 4 || m[6] == 6) set_dest(s, &msgs[i], &addrs[i], m);
  }
  uint32_t at = 0, sent = 0;
  int err = 0;
  while (at < count) {
    int n = sendmmsg(s->fd, msgs + at, count - at, MSG_DONTWAIT);
    if (n > 0) {
      at += (uint32_t)n;
      sent += (uint32_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    /* msgs[at] failed: drop it and go on with the next. */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && err == 0) err = errno;
    at++;
  }
  napi_value out;
  CHECK(napi_create_int32(env, err ? -err : (int32_t)sent, &out));
  return out;
}

/* sendFramed(sock, buf, start, end, dest|null, out): sends the whole frames (2-byte big-endian
 * length, then the datagram) in buf[start, end) straight from `buf`, to `dest` (a 24-byte
 * record) or the connected peer. Stops at a partial frame or one longer than `max`.
 * out[0] = bytes of whole frames taken, out[1] = datagrams, out[2] = payload bytes.
 * Returns 0, or -errno of the first failure that is not a full buffer. */
static napi_value sock_send_framed(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  uint8_t *buf, *dest = NULL;
  size_t buflen, destlen = 0;
  uint32_t start, end, max;
  CHECK(napi_get_buffer_info(env, argv[1], (void **)&buf, &buflen));
  CHECK(napi_get_value_uint32(env, argv[2], &start));
  CHECK(napi_get_value_uint32(env, argv[3], &end));
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[4], &t));
  if (t != napi_null && t != napi_undefined) CHECK(napi_get_buffer_info(env, argv[4], (void **)&dest, &destlen));
  void *outp;
  size_t outlen;
  napi_typedarray_type tt;
  napi_value ab;
  size_t aboff;
  CHECK(napi_get_typedarray_info(env, argv[5], &tt, &outlen, &outp, &ab, &aboff));
  CHECK(napi_get_value_uint32(env, argv[6], &max));
  if (tt != napi_uint32_array || outlen < 3 || end > buflen || start > end || (dest && destlen < META)) {
    napi_throw_range_error(env, NULL, "native udp: bad arguments to sendFramed");
    return NULL;
  }
  uint32_t *out = outp;
  struct mmsghdr msgs[SEND_MAX];
  struct iovec iovs[SEND_MAX];
  struct sockaddr_in6 sa;
  int err = 0;
  size_t off = start;
  uint32_t count = 0;
  uint64_t payload = 0;
  for (;;) {
    unsigned k = 0;
    while (k < SEND_MAX && end - off >= 2) {
      uint32_t l = ((uint32_t)buf[off] << 8) | buf[off + 1];
      if (l > max || end - off - 2 < l) break;
      iovs[k].iov_base = buf + off + 2;
      iovs[k].iov_len = l;
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_iov = &iovs[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      if (dest) {
        if (k == 0) set_dest(s, &msgs[0], &sa, dest);
        else {
          msgs[k].msg_hdr.msg_name = &sa;
          msgs[k].msg_hdr.msg_namelen = msgs[0].msg_hdr.msg_namelen;
        }
      }
      off += 2 + l;
      payload += l;
      k++;
    }
    if (k == 0) break;
    count += k;
    unsigned at = 0;
    while (at < k) {
      int n = sendmmsg(s->fd, msgs + at, k - at, MSG_DONTWAIT);
      if (n > 0) {
        at += (unsigned)n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && err == 0) err = errno;
      at++;
    }
    if (k < SEND_MAX) break;
  }
  out[0] = (uint32_t)(off - start);
  out[1] = count;
  out[2] = (uint32_t)payload;
  napi_value r;
  CHECK(napi_create_int32(env, -err, &r));
  return r;
}

static void on_poll_closed(uv_handle_t *h) {
  sock_t *s = (sock_t *)h;
  s->polling = 0;
  napi_env env = s->env;
  if (s->cb) napi_delete_reference(env, s->cb);
  if (s->buf_ref) napi_delete_reference(env, s->buf_ref);
  if (s->meta_ref) napi_delete_reference(env, s->meta_ref);
  if (s->actx) napi_async_destroy(env, s->actx);
  s->cb = s->buf_ref = s->meta_ref = NULL;
  s->actx = NULL;
  napi_ref self = s->self;
  s->self = NULL;
  /* Last: the external's finalizer may run once this reference is gone and frees `s`. */
  if (self) napi_delete_reference(env, self);
}

/* close(sock) */
static napi_value sock_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  if (!s || s->closed) return NULL;
  s->closed = 1;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
  }
  close(s->fd);
  s->fd = -1;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, sock_open, NULL, NULL, NULL, napi_default, NULL},
      {"bind", NULL, sock_bind, NULL, NULL, NULL, napi_default, NULL},
      {"local", NULL, sock_local, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, sock_start, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, sock_send, NULL, NULL, NULL, napi_default, NULL},
      {"sendFramed", NULL, sock_send_framed, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, sock_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
