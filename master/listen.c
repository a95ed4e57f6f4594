/*
 * master/listen.c — see listen.h. Addresses in the config are numeric (the
 * loader resolves names), so a socket is opened with getaddrinfo(NUMERICHOST)
 * and never blocks on DNS.
 */
#include "master/listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"

#define LISTEN_BACKLOG 4096

static int open_socket(const char *address, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(address, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s:%u: %s", address, port, gai_strerror(rc));
        return -1;
    }
    const char *what = "socket()";
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        goto fail;
    what = "setsockopt(SO_REUSEADDR)";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        goto fail;
    what = "setsockopt(SO_REUSEPORT)";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (ai->ai_family == AF_INET6) {
        what = "setsockopt(IPV6_V6ONLY)";
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
            goto fail;
    }
    what = "bind()";
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1)
        goto fail;
    what = "listen()";
    if (listen(fd, LISTEN_BACKLOG) == -1)
        goto fail;
    freeaddrinfo(ai);
    return fd;
fail:
    snprintf(err, errlen, "listen %s:%u: %s failed: %s", address, port, what, strerror(errno));
    if (fd != -1)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

static struct mb_listen_sock *find(struct mb_listen_set *set, const char *address, uint16_t port,
                                   uint32_t slot)
{
    if (set == NULL)
        return NULL;
    for (size_t i = 0; i < mb_listen_total(set) * set->nslots; i++) {
        struct mb_listen_sock *s = &set->socks[i];
        if (s->fd != -1 && s->slot == slot && s->port == port && strcmp(s->address, address) == 0)
            return s;
    }
    return NULL;
}

int mb_listen_build(const struct mb_conf *conf, struct mb_listen_set *old,
                    struct mb_listen_set *out, char *err, size_t errlen)
{
    bool metrics = conf->metrics.enabled;
    size_t nc = conf->server.nlisten, nl = nc + (metrics ? 1 : 0), ns = conf->workers;
    struct mb_listen_sock *socks = calloc(nl * ns + 1, sizeof(*socks));
    struct mb_listen_sock **taken = calloc(nl * ns + 1, sizeof(*taken));
    if (socks == NULL || taken == NULL) {
        snprintf(err, errlen, "listen: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nl * ns; i++)
        socks[i].fd = -1;

    /* Open what is new first; take nothing over from old until every new
     * socket exists, so a failure leaves old exactly as it was. */
    for (size_t l = 0; l < nl; l++) {
        const char *address = l < nc ? conf->server.listen[l].address : conf->metrics.address;
        uint16_t port = l < nc ? conf->server.listen[l].port : conf->metrics.port;
        for (size_t s = 0; s < ns; s++) {
            struct mb_listen_sock *sk = &socks[l * ns + s];
            sk->address = strdup(address);
            sk->port = port;
            sk->slot = (uint32_t)s;
            if (sk->address == NULL) {
                snprintf(err, errlen, "listen: out of memory");
                goto fail;
            }
            taken[l * ns + s] = find(old, address, port, (uint32_t)s);
            if (taken[l * ns + s] == NULL) {
                sk->fd = open_socket(address, port, err, errlen);
                if (sk->fd == -1) {
                    if (l >= nc) {
                        /* Say which listener: the port is often taken by
                         * another exporter or a second gateway. */
                        char why[512];
                        snprintf(why, sizeof(why), "%s", err);
                        snprintf(err, errlen, "metrics.%s", why);
                    }
                    goto fail;
                }
            }
        }
    }
    for (size_t i = 0; i < nl * ns; i++) {
        if (taken[i] != NULL) {
            socks[i].fd = taken[i]->fd;
            taken[i]->fd = -1;
        }
    }
    free(taken);
    out->socks = socks;
    out->nlisten = nc;
    out->nslots = ns;
    out->has_metrics = metrics;
    return MB_OK;

fail:
    if (socks != NULL) {
        for (size_t i = 0; i < nl * ns; i++) {
            if (socks[i].fd != -1)
                close(socks[i].fd);
            free(socks[i].address);
        }
    }
    free(socks);
    free(taken);
    return MB_ERR;
}

void mb_listen_close(struct mb_listen_set *set)
{
    if (set->socks == NULL)
        return;
    for (size_t i = 0; i < mb_listen_total(set) * set->nslots; i++) {
        if (set->socks[i].fd != -1)
            close(set->socks[i].fd);
        free(set->socks[i].address);
    }
    free(set->socks);
    set->socks = NULL;
    set->nlisten = set->nslots = 0;
    set->has_metrics = false;
}
