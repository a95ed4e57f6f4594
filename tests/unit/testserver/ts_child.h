/*
 * tests/unit/testserver/ts_child.h — the forked test server that
 * test_tshttp.c and test_tsnet.c talk to over raw sockets, and the raw
 * socket itself. Header only (static inline), included by each test file.
 *
 * ts_child_start() forks a child running serve(fd): serve starts its
 * listener(s) on 127.0.0.1 with kernel-chosen ports, writes one line with
 * the port(s) to fd, runs its loop until SIGTERM (ts_child_on_term breaks
 * it) and _exits. The parent waits at most 5 s for that line.
 * ts_child_stop() sends SIGTERM and fails the test unless the child exits
 * 0 within 5 s (it is killed if it does not). ts_child_dial() connects to
 * 127.0.0.1:port with a 5 s receive timeout.
 */
#ifndef MB_TESTS_UNIT_TS_CHILD_H
#define MB_TESTS_UNIT_TS_CHILD_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void ts_child_on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Forks the server; its port line into buf (NUL-terminated). The pid. */
static inline pid_t ts_child_start(void (*serve)(int fd), char *buf, size_t cap)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        close(p[0]);
        serve(p[1]);
        _exit(0);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the server reports its port(s) within 5 s");
    memset(buf, 0, cap);
    cr_assert_gt(read(p[0], buf, cap - 1), 0);
    close(p[0]);
    return child;
}

static inline void ts_child_stop(pid_t *child)
{
    int st = 0;
    if (*child <= 0)
        return;
    kill(*child, SIGTERM);
    for (int i = 0; i < 500 && waitpid(*child, &st, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(*child, &st, WNOHANG) == 0) {
        kill(*child, SIGKILL);
        waitpid(*child, &st, 0);
        cr_expect_fail("the server did not stop on SIGTERM within 5 s");
    }
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the server exits 0 on SIGTERM");
    *child = -1;
}

static inline int ts_child_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_neq(fd, -1);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

#endif
