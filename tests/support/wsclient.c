/*
 * tests/support/wsclient.c — see wsclient.h. One socket, one receive buffer
 * of raw bytes (frames not yet handled) and one message buffer (the message
 * being reassembled). Nothing runs in the background: pings are answered
 * while the caller waits in mb_wsclient_recv.
 */
#include "tests/support/wsclient.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/net.h"
#include "tests/support/testutil.h"

#define HEAD_MAX (16 * 1024)
#define MSG_MAX  (64u * 1024 * 1024) /* a reply larger than this is a server bug */

struct mb_wsclient {
    int fd;
    uint8_t *rx; /* received bytes not yet handled */
    size_t rx_len, rx_cap;
    char *msg; /* the message being reassembled, NUL-terminated */
    size_t msg_len, msg_cap;
    int msg_op;
    bool in_msg; /* a fragmented message has started */
    bool close_sent, close_received, eof;
    uint32_t mask_state;
    char protocol[128];
};

static uint32_t next_mask(struct mb_wsclient *c)
{
    /* xorshift32: masking needs unpredictability only against proxies, which
     * tests do not have; varying keys still exercise the server's unmasking. */
    uint32_t x = c->mask_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->mask_state = x;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - mb_test_now_ms();
    return left > 0 ? (int)left : 0;
}

/* Reads what the socket has into rx, growing it when full. */
static int fill(struct mb_wsclient *c, int64_t deadline)
{
    if (c->rx_len == c->rx_cap) {
        if (c->rx_cap >= MSG_MAX + 16)
            return -EMSGSIZE;
        size_t ncap = c->rx_cap * 2;
        uint8_t *n = realloc(c->rx, ncap);
        if (!n)
            return -ENOMEM;
        c->rx = n;
        c->rx_cap = ncap;
    }
    long n =
        mb_test_recv_some(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, remaining(deadline));
    if (n < 0) {
        if (n == -ECONNRESET || n == -EPIPE)
            c->eof = true;
        return (int)n;
    }
    if (n == 0) {
        c->eof = true;
        return -ECONNRESET;
    }
    c->rx_len += (size_t)n;
    return 0;
}

int mb_wsclient_connect(struct mb_wsclient **out, uint16_t port, const char *path,
                        const char *subprotocol, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    char key[25], req[1024], host[32];
    int rc;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct mb_wsclient *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->fd = -1;
    c->rx_cap = 8192;
    c->rx = malloc(c->rx_cap);
    c->msg_cap = 8192;
    c->msg = malloc(c->msg_cap);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->mask_state = (uint32_t)(ts.tv_nsec ^ (getpid() << 16)) | 1u;
    if (!c->rx || !c->msg) {
        rc = -ENOMEM;
        goto fail;
    }

    c->fd = mb_test_tcp_connect(port, timeout_ms);
    if (c->fd < 0) {
        rc = c->fd;
        if (err)
            snprintf(err, errlen, "connect 127.0.0.1:%u: %s", (unsigned)port, strerror(-rc));
        goto fail;
    }
    mb_wsframe_make_key(key);
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)port);
    int rl = mb_wsframe_handshake_request(req, sizeof(req), host, path, key, subprotocol);
    if (rl < 0) {
        rc = -ENAMETOOLONG;
        goto fail;
    }
    rc = mb_test_send_all(c->fd, req, (size_t)rl, remaining(deadline));
    if (rc) {
        if (err)
            snprintf(err, errlen, "sending the handshake: %s", strerror(-rc));
        goto fail;
    }

    /* Read the response head; bytes after it already belong to frames. */
    const uint8_t *eoh = NULL;
    while (!eoh) {
        if (c->rx_len >= HEAD_MAX) {
            rc = -EPROTO;
            if (err)
                snprintf(err, errlen, "handshake response head over %d bytes", HEAD_MAX);
            goto fail;
        }
        rc = fill(c, deadline);
        if (rc) {
            if (err)
                snprintf(err, errlen, "reading the handshake response: %s%s%.*s", strerror(-rc),
                         c->rx_len ? "; got: " : "", (int)c->rx_len, (const char *)c->rx);
            goto fail;
        }
        eoh = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
    }
    size_t hl = (size_t)(eoh + 4 - c->rx);
    char *head = strndup((const char *)c->rx, hl);
    if (!head) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = mb_wsframe_handshake_check(head, hl, key, c->protocol, sizeof(c->protocol));
    if (rc) {
        if (err) {
            const char *eol = strstr(head, "\r\n");
            snprintf(err, errlen, "handshake refused: %.*s", (int)(eol - head), head);
        }
        free(head);
        rc = -EPROTO;
        goto fail;
    }
    free(head);
    memmove(c->rx, c->rx + hl, c->rx_len - hl);
    c->rx_len -= hl;
    *out = c;
    return 0;
fail:
    mb_wsclient_free(&c);
    return rc;
}

const char *mb_wsclient_protocol(const struct mb_wsclient *c)
{
    return c->protocol;
}

int mb_wsclient_fd(const struct mb_wsclient *c)
{
    return c->fd;
}

int mb_wsclient_send_raw(struct mb_wsclient *c, const void *bytes, size_t len, int timeout_ms)
{
    return mb_test_send_all(c->fd, bytes, len, timeout_ms);
}

int mb_wsclient_send_frame(struct mb_wsclient *c, int fin, int opcode, const void *payload,
                           size_t len, int timeout_ms)
{
    size_t cap = len + 14;
    uint8_t stackbuf[512], *buf = cap <= sizeof(stackbuf) ? stackbuf : malloc(cap);
    if (!buf)
        return -ENOMEM;
    long n = mb_wsframe_encode(buf, cap, fin, opcode, payload, len, 1, next_mask(c));
    int rc = n < 0 ? -EINVAL : mb_test_send_all(c->fd, buf, (size_t)n, timeout_ms);
    if (rc == 0 && opcode == MB_WS_OP_CLOSE)
        c->close_sent = true;
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int mb_wsclient_send(struct mb_wsclient *c, int opcode, const void *payload, size_t len,
                     int timeout_ms)
{
    return mb_wsclient_send_frame(c, 1, opcode, payload, len, timeout_ms);
}

int mb_wsclient_send_text(struct mb_wsclient *c, const char *text, int timeout_ms)
{
    return mb_wsclient_send(c, MB_WS_OP_TEXT, text, strlen(text), timeout_ms);
}

static int msg_append(struct mb_wsclient *c, const uint8_t *p, size_t len)
{
    if (c->msg_len + len + 1 > MSG_MAX)
        return -EMSGSIZE;
    if (c->msg_len + len + 1 > c->msg_cap) {
        size_t ncap = c->msg_cap;
        while (ncap < c->msg_len + len + 1)
            ncap *= 2;
        char *n = realloc(c->msg, ncap);
        if (!n)
            return -ENOMEM;
        c->msg = n;
        c->msg_cap = ncap;
    }
    memcpy(c->msg + c->msg_len, p, len);
    c->msg_len += len;
    c->msg[c->msg_len] = '\0';
    return 0;
}

/* Handles one complete frame. Returns 1 when *msg is complete, 0 to go on
 * reading, or -errno. */
static int handle_frame(struct mb_wsclient *c, const struct mb_wsframe *f, struct mb_wsmsg *msg,
                        int64_t deadline)
{
    if (f->masked)
        return -EPROTO; /* RFC 6455 5.1: a server must not mask */
    int rc;
    switch (f->opcode) {
    case MB_WS_OP_PING:
        rc = mb_wsclient_send(c, MB_WS_OP_PONG, f->payload, (size_t)f->len, remaining(deadline));
        return rc == 0 || rc == -EPIPE || rc == -ECONNRESET ? 0 : rc;
    case MB_WS_OP_PONG:
        return 0;
    case MB_WS_OP_CLOSE:
        c->msg_len = 0;
        c->msg[0] = '\0';
        msg->close_code = 1005;
        if (f->len == 1)
            return -EPROTO;
        if (f->len >= 2) {
            msg->close_code = (f->payload[0] << 8) | f->payload[1];
            if ((rc = msg_append(c, f->payload + 2, (size_t)f->len - 2)))
                return rc;
        }
        c->close_received = true;
        if (!c->close_sent) {
            uint8_t echo[2] = {(uint8_t)(msg->close_code >> 8), (uint8_t)msg->close_code};
            /* Best effort: the server may already have gone. */
            mb_wsclient_send(c, MB_WS_OP_CLOSE, echo, msg->close_code == 1005 ? 0 : 2,
                             remaining(deadline));
            c->close_sent = true;
        }
        msg->opcode = MB_WS_OP_CLOSE;
        msg->data = c->msg;
        msg->len = c->msg_len;
        return 1;
    case MB_WS_OP_TEXT:
    case MB_WS_OP_BINARY:
        if (c->in_msg)
            return -EPROTO;
        c->msg_len = 0;
        c->msg[0] = '\0';
        c->msg_op = f->opcode;
        break;
    case MB_WS_OP_CONT:
        if (!c->in_msg)
            return -EPROTO;
        break;
    default:
        return -EPROTO;
    }
    if ((rc = msg_append(c, f->payload, (size_t)f->len)))
        return rc;
    c->in_msg = !f->fin;
    if (!f->fin)
        return 0;
    msg->opcode = c->msg_op;
    msg->data = c->msg;
    msg->len = c->msg_len;
    msg->close_code = 0;
    return 1;
}

int mb_wsclient_recv(struct mb_wsclient *c, struct mb_wsmsg *msg, int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    memset(msg, 0, sizeof(*msg));
    if (c->close_received)
        return -ENOTCONN;
    for (;;) {
        struct mb_wsframe f;
        long n = mb_wsframe_parse(c->rx, c->rx_len, &f);
        if (n < 0)
            return -EPROTO;
        if (n > 0) {
            int rc = handle_frame(c, &f, msg, deadline);
            memmove(c->rx, c->rx + n, c->rx_len - (size_t)n);
            c->rx_len -= (size_t)n;
            if (rc < 0)
                return rc;
            if (rc == 1)
                return 0;
            continue;
        }
        if (c->eof)
            return -ECONNRESET;
        int rc = fill(c, deadline);
        if (rc)
            return rc;
    }
}

int mb_wsclient_call(struct mb_wsclient *c, const char *text, struct mb_wsmsg *reply,
                     int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    int rc = mb_wsclient_send_text(c, text, timeout_ms);
    if (rc)
        return rc;
    return mb_wsclient_recv(c, reply, remaining(deadline));
}

int mb_wsclient_close(struct mb_wsclient *c, int code, int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    int rc = 0;
    if (!c->close_sent) {
        uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        rc = mb_wsclient_send(c, MB_WS_OP_CLOSE, p, code ? 2 : 0, timeout_ms);
        if (rc)
            return rc;
    }
    while (!c->close_received && !c->eof) {
        struct mb_wsmsg m;
        rc = mb_wsclient_recv(c, &m, remaining(deadline));
        if (rc == -ECONNRESET)
            return 0; /* the server closed the TCP connection: done as well */
        if (rc)
            return rc;
    }
    shutdown(c->fd, SHUT_WR);
    return 0;
}

void mb_wsclient_free(struct mb_wsclient **cp)
{
    struct mb_wsclient *c = *cp;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->rx);
    free(c->msg);
    free(c);
    *cp = NULL;
}
