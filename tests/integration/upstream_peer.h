/*
 * tests/integration/upstream_peer.h — the network test server
 * (build/mcp-bridge-testserver --http/--ws PORT) as a backend peer of the
 * gateway, for test_upstream_http.c and test_upstream_ws.c. Header only,
 * like ops_daemon.h.
 *
 * The peer is started with port 0 (the kernel picks; it prints "listening
 * http PORT") or on a given port (a restart on the same port), dies with the
 * test process (PR_SET_PDEATHSIG), and is stopped by pid (TERM, bounded
 * wait, KILL). peer_established() counts the peer's established TCP
 * connections from /proc/net/tcp: how many upstream connections the gateway
 * holds open to it. peer_gateway_start() starts a peer and a daemon with it
 * as the one backend (also used by test_cache.c; test_backend_stats.c uses
 * the peer alone).
 */
#ifndef MB_TESTS_UPSTREAM_PEER_H
#define MB_TESTS_UPSTREAM_PEER_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"

struct peer {
    pid_t pid;
    int port;
};

/* A free port below the kernel's ephemeral range (32768 and up here). Tests
 * restart a peer on the port it had; had the kernel chosen that port, it
 * could hand it to another test's port-0 bind while the peer is down, and
 * the first daemon would reconnect to the wrong peer. Ports picked here are
 * never handed out by the kernel. */
static inline int peer_pick_port(void)
{
    for (int tries = 0; tries < 64; tries++) {
        int port = 20000 + (int)(((unsigned)getpid() * 7919u + (unsigned)mb_test_now_ms() * 31u +
                                  (unsigned)tries * 104729u) %
                                 12000u);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd != -1 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd != -1)
            close(fd);
        if (ok)
            return port;
    }
    return 0; /* let the test server pick one */
}

/* Starts the test server with mode "--http" or "--ws" on port (0 = a free
 * one from peer_pick_port), with "--name name" when name is not NULL. */
static inline void peer_start_named(struct peer *p, const char *mode, int port, const char *name)
{
    char bin[PATH_MAX], portarg[16], line[256];
    int fds[2];
    size_t n = 0;

    if (port == 0)
        port = peer_pick_port();

    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-testserver");
    snprintf(portarg, sizeof(portarg), "%d", port);
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        if (name)
            execl(bin, bin, mode, portarg, "--name", name, (char *)NULL);
        else
            execl(bin, bin, mode, portarg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* "listening http 12345\n", within 5 s. */
    int64_t deadline = mb_test_now_ms() + 5000;
    while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int left = (int)(deadline - mb_test_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        ssize_t r = read(fds[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    line[n] = '\0';
    int got = 0;
    const char *sp = strrchr(line, ' ');
    if (strncmp(line, "listening ", 10) == 0 && sp != NULL)
        got = atoi(sp + 1);
    if (got <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("test server %s %d did not start: \"%s\"", mode, port, line);
    }
    p->pid = pid;
    p->port = got;
}

static inline void peer_start(struct peer *p, const char *mode, int port)
{
    peer_start_named(p, mode, port, NULL);
}

/* Kills the peer at once (SIGKILL): a backend that dies without a word. */
static inline void peer_kill(struct peer *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

static inline void peer_stop(struct peer *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        mb_test_sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* Starts the peer (mode "--http" or "--ws", any port), then the daemon with
 * workers workers and, as extra config, head followed by a backends section
 * of one backend at the peer: "h" (transport http, /mcp) or "w" (transport
 * websocket, /), with tail as its further keys (lines indented by four). */
static inline void peer_gateway_start(struct peer *p, const char *mode, struct mb_test_daemon **gw,
                                      int workers, const char *head, const char *tail)
{
    char extra[2048];
    bool ws = strcmp(mode, "--ws") == 0;
    peer_start(p, mode, 0);
    int n = snprintf(extra, sizeof(extra),
                     "%s"
                     "backends:\n"
                     "  - name: %s\n"
                     "    transport: %s\n"
                     "    endpoints: [{url: \"%s://127.0.0.1:%d%s\"}]\n"
                     "%s",
                     head ? head : "", ws ? "w" : "h", ws ? "websocket" : "http",
                     ws ? "ws" : "http", p->port, ws ? "/" : "/mcp", tail ? tail : "");
    cr_assert(n > 0 && (size_t)n < sizeof(extra), "extra config too long");
    struct mb_test_conf conf = {.workers = workers, .extra = extra};
    mb_test_must_start(gw, &conf);
}

/* Established TCP connections whose local port is the peer's. */
static inline int peer_established(const struct peer *p)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int count = 0;

    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, state;
        char local[64];
        if (sscanf(line, " %*d: %63s %*s %x", local, &state) != 2)
            continue;
        const char *colon = strchr(local, ':');
        if (colon == NULL || sscanf(colon + 1, "%x", &lport) != 1)
            continue;
        if ((int)lport == p->port && state == 0x01)
            count++;
    }
    fclose(f);
    return count;
}

/* One POST to the peer's /mcp with "Connection: close"; the response
 * (headers and body) into resp. */
static inline void peer_post(const struct peer *p, const char *session, const char *body,
                             char *resp, size_t cap)
{
    char req[2048];
    int fd = mb_test_tcp_connect((uint16_t)p->port, 5000);
    cr_assert_geq(fd, 0);
    snprintf(req, sizeof(req),
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Accept: application/json, text/event-stream\r\nConnection: close\r\n"
             "%s%s%sContent-Length: %zu\r\n\r\n%s",
             session ? "Mcp-Session-Id: " : "", session ? session : "", session ? "\r\n" : "",
             strlen(body), body);
    cr_assert_eq(mb_test_send_all(fd, req, strlen(req), 5000), 0);
    size_t n = 0;
    long r;
    while (n < cap - 1 && (r = mb_test_recv_some(fd, resp + n, cap - 1 - n, 5000)) > 0)
        n += (size_t)r;
    resp[n] = '\0';
    close(fd);
}

/* The peer's own count (its `counter` tool) of tools[name] or methods[name],
 * asked directly over a session of the test's own (which adds one
 * initialize to what the peer counts). */
static inline int peer_counted(const struct peer *p, const char *section, const char *name)
{
    char resp[16384], sid[256] = "", pat[128];
    peer_post(p, NULL,
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
              "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":"
              "\"t\",\"version\":\"1\"}}}",
              resp, sizeof(resp));
    const char *h = strcasestr(resp, "\nmcp-session-id:");
    cr_assert_not_null(h, "no session from the peer: %s", resp);
    sscanf(h + 16, " %255[^\r\n]", sid);
    peer_post(p, sid,
              "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"counter\",\"arguments\":{}}}",
              resp, sizeof(resp));
    /* structuredContent: {..."methods":{...},"tools":{...}} */
    const char *sc = strstr(resp, "\"structuredContent\"");
    cr_assert_not_null(sc, "%s", resp);
    const char *sec = NULL;
    snprintf(pat, sizeof(pat), "\"%s\":{", section);
    sec = strstr(sc, pat);
    if (sec == NULL)
        return 0;
    const char *end = strchr(sec, '}');
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *v = strstr(sec, pat);
    if (v == NULL || (end && v > end))
        return 0;
    return atoi(v + strlen(pat));
}

#endif
