/*
 * master/listen.h — the master's listening sockets: one SO_REUSEPORT socket
 * per worker slot per listener (DESIGN §1, §9).
 *
 * The master owns every listening socket for the life of the process. A
 * worker inherits the sockets of its slot; a respawned worker gets the very
 * same sockets, so connections queued while a slot had no worker are not
 * lost. On reload the new generation's set is built by taking over every
 * socket whose (address, port, slot) is unchanged and opening sockets only
 * for what is new; sockets the new generation does not use are closed in the
 * master at once (old workers keep their own inherited copies until they
 * exit). All sockets are non-blocking and close-on-exec.
 *
 * The metrics endpoint (metrics.listen, when metrics.enabled) is one more
 * listener of the same kind, kept after the client listeners: the workers
 * serve it too, so a scrape needs no extra process and any worker answers
 * from the same shm totals. The config loader refuses a metrics address that
 * a client listener also binds (with SO_REUSEPORT both would bind, and the
 * kernel would mix client and scrape connections).
 */
#ifndef MB_MASTER_LISTEN_H
#define MB_MASTER_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mb_conf;

struct mb_listen_sock {
    char *address;
    uint16_t port;
    uint32_t slot;
    int fd;
};

/* The sockets of one generation: fds[listener * nslots + slot]. Listeners
 * 0 .. nlisten-1 are server.listen; when has_metrics, listener nlisten is
 * metrics.listen. */
struct mb_listen_set {
    struct mb_listen_sock *socks;
    size_t nlisten;
    size_t nslots;
    bool has_metrics;
};

/* Builds the set for conf, taking sockets over from old (may be NULL) where
 * address, port and slot match; those are removed from old. Returns 0, or
 * MB_ERR with err filled (nothing new stays open; old is untouched then). */
int mb_listen_build(const struct mb_conf *conf, struct mb_listen_set *old,
                    struct mb_listen_set *out, char *err, size_t errlen);
/* Closes every socket of the set and frees it. */
void mb_listen_close(struct mb_listen_set *set);
/* The fd of (listener, slot). */
static inline int mb_listen_fd(const struct mb_listen_set *set, size_t listener, size_t slot)
{
    return set->socks[listener * set->nslots + slot].fd;
}
/* The metrics socket of a slot, or -1 when metrics are off. */
static inline int mb_listen_metrics_fd(const struct mb_listen_set *set, size_t slot)
{
    return set->has_metrics ? mb_listen_fd(set, set->nlisten, slot) : -1;
}
/* Every listener of the set, client and metrics. */
static inline size_t mb_listen_total(const struct mb_listen_set *set)
{
    return set->nlisten + (set->has_metrics ? 1 : 0);
}

#endif
