/*
 * tests/support/net.h — TCP on 127.0.0.1 for tests: choosing a free port at
 * run time, a connect bounded in time, and one plain HTTP/1.1 GET (for
 * /healthz) read until the server closes or the body is complete.
 */
#ifndef MB_TESTS_NET_H
#define MB_TESTS_NET_H

#include <stddef.h>
#include <stdint.h>

/* Binds 127.0.0.1:0, reads the port the kernel chose, closes. Returns the
 * port, or -errno. (Another process may take it before the daemon binds it;
 * the window is small and the daemon then fails loudly.) */
int mb_test_free_port(void);

/* A connected, blocking TCP socket to 127.0.0.1:port (O_CLOEXEC, TCP_NODELAY),
 * or -errno (-ETIMEDOUT after timeout_ms). */
int mb_test_tcp_connect(uint16_t port, int timeout_ms);

/* Connections this process makes afterwards (mb_test_tcp_connect, and so
 * the WebSocket client) bind the local IPv4 address addr, e.g. "127.0.0.2"
 * to be a second client address; NULL = the kernel's choice. 0 or -EINVAL. */
int mb_test_tcp_set_source(const char *addr);

/* Writes all of buf / reads what is there, both bounded by timeout_ms.
 * Return 0 / the byte count (0 at end of stream), or -errno. */
int mb_test_send_all(int fd, const void *buf, size_t len, int timeout_ms);
long mb_test_recv_some(int fd, void *buf, size_t cap, int timeout_ms);

/*
 * Sends "GET path HTTP/1.1" with Host and "Connection: close" and reads the
 * response. *status receives the status code; body (optional) receives up to
 * cap-1 bytes of the body, NUL-terminated. Returns 0, or -errno.
 */
int mb_test_http_get(uint16_t port, const char *path, int *status, char *body, size_t cap,
                     int timeout_ms);

#endif
