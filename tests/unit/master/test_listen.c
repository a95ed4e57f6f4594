/*
 * tests/unit/master/test_listen.c — master/listen.c: one socket per slot per
 * listener, all in one SO_REUSEPORT group; a rebuild takes over unchanged
 * sockets (same descriptor) and opens only new ones; a failed rebuild leaves
 * the old set intact.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "master/listen.h"

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static struct mb_conf *conf_with(uint32_t workers, size_t n, const uint16_t *ports)
{
    struct mb_conf *c = calloc(1, sizeof(*c));
    c->workers = workers;
    c->server.listen = calloc(n, sizeof(*c->server.listen));
    c->server.nlisten = n;
    for (size_t i = 0; i < n; i++) {
        c->server.listen[i].address = "127.0.0.1";
        c->server.listen[i].port = ports[i];
    }
    return c;
}

static void conf_drop(struct mb_conf *c)
{
    free(c->server.listen);
    free(c);
}

static int is_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

Test(listen, one_socket_per_slot_and_listener)
{
    uint16_t ports[2] = {free_port(), free_port()};
    struct mb_conf *c = conf_with(3, 2, ports);
    struct mb_listen_set set = {0};
    char err[256];
    cr_assert_eq(mb_listen_build(c, NULL, &set, err, sizeof(err)), MB_OK, "%s", err);
    cr_assert_eq(set.nlisten, 2);
    cr_assert_eq(set.nslots, 3);
    for (size_t l = 0; l < 2; l++)
        for (size_t s = 0; s < 3; s++) {
            int fd = mb_listen_fd(&set, l, s);
            cr_assert(is_listening(fd));
            int one = 0;
            socklen_t len = sizeof(one);
            getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, &len);
            cr_assert(one, "SO_REUSEPORT set");
        }
    mb_listen_close(&set);
    conf_drop(c);
}

Test(listen, rebuild_takes_over_unchanged_sockets)
{
    uint16_t p1 = free_port(), p2 = free_port();
    struct mb_conf *a = conf_with(2, 1, &p1);
    uint16_t both[2] = {p1, p2};
    struct mb_conf *b = conf_with(3, 2, both);
    struct mb_listen_set old = {0}, neu = {0};
    char err[256];
    cr_assert_eq(mb_listen_build(a, NULL, &old, err, sizeof(err)), MB_OK, "%s", err);
    int fd0 = mb_listen_fd(&old, 0, 0), fd1 = mb_listen_fd(&old, 0, 1);
    cr_assert_eq(mb_listen_build(b, &old, &neu, err, sizeof(err)), MB_OK, "%s", err);
    cr_assert_eq(mb_listen_fd(&neu, 0, 0), fd0, "slot 0 keeps its socket");
    cr_assert_eq(mb_listen_fd(&neu, 0, 1), fd1, "slot 1 keeps its socket");
    cr_assert(is_listening(mb_listen_fd(&neu, 0, 2)));
    cr_assert(is_listening(mb_listen_fd(&neu, 1, 0)));
    cr_assert_eq(old.socks[0].fd, -1, "taken over, no longer in the old set");
    mb_listen_close(&old);
    cr_assert(is_listening(fd0), "closing the old set does not close what moved");
    mb_listen_close(&neu);
    conf_drop(a);
    conf_drop(b);
}

Test(listen, failed_rebuild_leaves_old_untouched)
{
    uint16_t p1 = free_port();
    struct mb_conf *a = conf_with(1, 1, &p1);
    struct mb_listen_set old = {0}, neu = {0};
    char err[256];
    cr_assert_eq(mb_listen_build(a, NULL, &old, err, sizeof(err)), MB_OK, "%s", err);
    int fd0 = mb_listen_fd(&old, 0, 0);
    /* A port someone else holds without SO_REUSEPORT cannot join. */
    int blocker = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(blocker, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(blocker, 1), 0);
    getsockname(blocker, (struct sockaddr *)&sa, &len);
    uint16_t ports[2] = {p1, ntohs(sa.sin_port)};
    struct mb_conf *b = conf_with(1, 2, ports);
    cr_assert_eq(mb_listen_build(b, &old, &neu, err, sizeof(err)), MB_ERR);
    cr_assert(strstr(err, "bind()") != NULL, "%s", err);
    cr_assert_eq(mb_listen_fd(&old, 0, 0), fd0);
    cr_assert(is_listening(fd0));
    close(blocker);
    mb_listen_close(&old);
    conf_drop(a);
    conf_drop(b);
}
