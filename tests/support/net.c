/*
 * tests/support/net.c — see net.h. Sockets are blocking; every wait goes
 * through poll() with what is left of the caller's deadline.
 */
#include "tests/support/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/testutil.h"

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

int mb_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    struct sockaddr_in sa = loopback(0);
    socklen_t sl = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* The local address connections bind (mb_test_tcp_set_source); 0 = any. */
static in_addr_t source_addr;

int mb_test_tcp_set_source(const char *addr)
{
    struct in_addr a = {0};
    if (addr != NULL && inet_pton(AF_INET, addr, &a) != 1)
        return -EINVAL;
    source_addr = a.s_addr;
    return 0;
}

int mb_test_tcp_connect(uint16_t port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = loopback(port);
    int err = 0;
    if (source_addr != 0) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = source_addr};
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
            err = -errno;
            goto fail;
        }
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        if (errno != EINPROGRESS) {
            err = -errno;
            goto fail;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int64_t deadline = mb_test_now_ms() + timeout_ms;
        int r;
        do {
            int64_t left = deadline - mb_test_now_ms();
            r = poll(&p, 1, left > 0 ? (int)left : 0);
        } while (r == -1 && errno == EINTR);
        if (r == 0) {
            err = -ETIMEDOUT;
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (r == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1) {
            err = -errno;
            goto fail;
        }
        if (soerr) {
            err = -soerr;
            goto fail;
        }
    }
    /* Back to blocking: callers bound their waits with poll. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == -1) {
        err = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return err;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mb_test_now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int mb_test_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    const char *p = buf;
    while (len) {
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r)
            return r;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == -1) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

long mb_test_recv_some(int fd, void *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    for (;;) {
        int r = wait_fd(fd, POLLIN, deadline);
        if (r)
            return r;
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

/* The body is complete when the response said how long it is; otherwise the
 * server closes the connection (we asked for Connection: close). */
static bool response_complete(const char *buf, size_t len)
{
    const char *eoh = strstr(buf, "\r\n\r\n");
    if (!eoh)
        return false;
    size_t head = (size_t)(eoh + 4 - buf);
    for (const char *p = buf; p < eoh; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
            return len >= head + strtoul(p + 15, NULL, 10);
    }
    return false;
}

int mb_test_http_get(uint16_t port, const char *path, int *status, char *body, size_t cap,
                     int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    char req[512];
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", path,
                      (unsigned)port);
    if (rl < 0 || (size_t)rl >= sizeof(req))
        return -ENAMETOOLONG;
    int fd = mb_test_tcp_connect(port, timeout_ms);
    if (fd < 0)
        return fd;
    int err = mb_test_send_all(fd, req, (size_t)rl, timeout_ms);
    size_t bcap = 65536, len = 0;
    char *buf = NULL;
    if (err)
        goto out;
    buf = malloc(bcap);
    if (!buf) {
        err = -ENOMEM;
        goto out;
    }
    while (len < bcap - 1) {
        int64_t left = deadline - mb_test_now_ms();
        long n = mb_test_recv_some(fd, buf + len, bcap - 1 - len, left > 0 ? (int)left : 0);
        if (n < 0) {
            err = (int)n;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (response_complete(buf, len))
            break;
    }
    buf[len] = '\0';
    int code = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) {
        err = -EPROTO;
        goto out;
    }
    if (status)
        *status = code;
    if (body && cap) {
        const char *eoh = strstr(buf, "\r\n\r\n");
        snprintf(body, cap, "%s", eoh ? eoh + 4 : "");
    }
out:
    free(buf);
    close(fd);
    return err;
}
