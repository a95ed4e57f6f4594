/*
 * worker/upstream_common.c — the pieces the HTTP and WebSocket upstream
 * transports share (see upstream_common.h): the endpoint check, the lws
 * client vhost and the retry backoff.
 */
#include "worker/upstream_common.h"

#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "worker/worker.h"

int mb_upstream_endpoints_check(const struct mb_conf_backend *b)
{
    if (b->nendpoints == 0)
        return MB_ERR;
    for (size_t i = 0; i < b->nendpoints; i++)
        if (b->endpoints[i].tls) {
            mb_log_error("backend %s: %s: TLS upstreams are not supported yet", b->name,
                         b->endpoints[i].url);
            return MB_ERR;
        }
    return 0;
}

struct lws_vhost *mb_upstream_vhost_create(struct mb_upstream *u,
                                           const struct lws_protocols *protocols)
{
    struct lws_context_creation_info info;
    char name[128];

    if (u->w == NULL || u->w->ctx == NULL) {
        mb_log_error("backend %s: no lws context", u->bconf->name);
        return NULL;
    }
    snprintf(name, sizeof(name), "upstream-%s", u->bconf->name);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* not the admin vhost's port value (metrics.c) */
    info.vhost_name = name;
    info.protocols = protocols;
    struct lws_vhost *vh = lws_create_vhost(u->w->ctx, &info);
    if (vh == NULL)
        mb_log_error("backend %s: creating the lws client vhost failed", u->bconf->name);
    return vh;
}

void mb_upstream_retry_arm(struct ev_loop *loop, ev_timer *t, double *backoff)
{
    double d = *backoff;
    *backoff = *backoff * 2 > MB_UPSTREAM_BACKOFF_MAX_S ? MB_UPSTREAM_BACKOFF_MAX_S : *backoff * 2;
    ev_timer_stop(loop, t);
    ev_timer_set(t, d, 0.);
    ev_timer_start(loop, t);
}
