/*
 * worker/upstream_http_resp.c — the HTTP/1.1 response reader and the
 * Server-Sent Events parser of the Streamable HTTP upstream
 * (upstream_http_resp.h).
 *
 * States: STATUS → HEADERS → one of BODY_LENGTH, CHUNK_SIZE ⇄ CHUNK_DATA →
 * CHUNK_CRLF, TRAILERS, BODY_EOF (until the connection ends) → DONE. Lines
 * (status, headers, chunk sizes, trailers) end in LF, an optional CR before
 * it is dropped. Body bytes go through body_bytes(): into the SSE parser for
 * an event stream, else into the collected body.
 *
 * SSE (the WHATWG event-stream format): lines end in CRLF, LF or CR; a line
 * starting with ':' is a comment; "data:" appends its value (one leading
 * space removed) and a newline to the event's data; "event:" names the
 * type; an empty line dispatches the event when it had a data field, with
 * the final newline removed. Events of a type other than "message" are not
 * MCP messages and are dropped; "id:" and "retry:" matter only to a client
 * that resumes streams, which this one does not.
 */
#include "worker/upstream_http_resp.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/errors.h"

enum {
    S_STATUS = 0,
    S_HEADERS,
    S_BODY_LENGTH,
    S_CHUNK_SIZE,
    S_CHUNK_DATA,
    S_CHUNK_CRLF,
    S_TRAILERS,
    S_BODY_EOF,
    S_DONE
};

void mb_http_resp_init(struct mb_http_resp *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    r->max_body = max_body;
}

void mb_http_resp_reset(struct mb_http_resp *r)
{
    size_t max = r->max_body;

    memset(r, 0, offsetof(struct mb_http_resp, line));
    r->max_body = max;
    mb_buf_reset(&r->line);
    mb_buf_reset(&r->body);
    mb_buf_reset(&r->sse_line);
    mb_buf_reset(&r->sse_data);
    r->session_id[0] = '\0';
    r->error[0] = '\0';
}

void mb_http_resp_free(struct mb_http_resp *r)
{
    mb_buf_free(&r->line);
    mb_buf_free(&r->body);
    mb_buf_free(&r->sse_line);
    mb_buf_free(&r->sse_data);
}

static int fail(struct mb_http_resp *r, const char *why)
{
    snprintf(r->error, sizeof(r->error), "%s", why);
    return MB_ERR;
}

/* ---------------------------------------------------------------- SSE */
static int sse_line(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg)
{
    const char *l = r->sse_line.data;
    size_t n = r->sse_line.len;

    if (n == 0) { /* dispatch */
        if (r->sse_have_data && !r->sse_other_event) {
            size_t dl = r->sse_data.len;
            if (dl > 0 && r->sse_data.data[dl - 1] == '\n')
                dl--;
            if (cb->on_event != NULL)
                cb->on_event(arg, dl ? r->sse_data.data : "", dl);
        }
        mb_buf_reset(&r->sse_data);
        r->sse_have_data = false;
        r->sse_other_event = false;
        return MB_OK;
    }
    if (l[0] == ':')
        return MB_OK;
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (r->sse_data.len + vlen + 1 > r->max_body)
            return fail(r, "an event larger than the message size limit");
        if (mb_buf_append(&r->sse_data, v, vlen) != 0 || mb_buf_append(&r->sse_data, "\n", 1) != 0)
            return fail(r, "out of memory");
        r->sse_have_data = true;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        r->sse_other_event = !(vlen == 0 || (vlen == 7 && memcmp(v, "message", 7) == 0));
    }
    return MB_OK;
}

static int sse_bytes(struct mb_http_resp *r, const char *p, size_t n,
                     const struct mb_http_resp_cb *cb, void *arg)
{
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (r->sse_cr && c == '\n') { /* the LF of a CRLF already counted */
            r->sse_cr = false;
            i++;
            continue;
        }
        r->sse_cr = false;
        if (c == '\r' || c == '\n') {
            r->sse_cr = (c == '\r');
            int rc = sse_line(r, cb, arg);
            mb_buf_reset(&r->sse_line);
            if (rc != MB_OK)
                return rc;
            i++;
            continue;
        }
        /* Copy the run up to the next line end at once. */
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        if (r->sse_line.len + (j - i) > r->max_body + 16)
            return fail(r, "an event line larger than the message size limit");
        if (mb_buf_append(&r->sse_line, p + i, j - i) != 0)
            return fail(r, "out of memory");
        i = j;
    }
    return MB_OK;
}

/* ---------------------------------------------------------------- body */
static int body_bytes(struct mb_http_resp *r, const char *p, size_t n,
                      const struct mb_http_resp_cb *cb, void *arg)
{
    r->body_bytes += n;
    if (r->sse)
        return sse_bytes(r, p, n, cb, arg);
    if (r->body.len + n > r->max_body)
        return fail(r, "a response body larger than the message size limit");
    if (mb_buf_append(&r->body, p, n) != 0)
        return fail(r, "out of memory");
    return MB_OK;
}

/* The body is complete: data/len, or the collected body when data is
 * NULL. */
static int finish_body(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg,
                       const char *data, size_t len)
{
    if (r->sse) {
        /* An unterminated last line or event at the end is dropped, as the
         * SSE format says: only a blank line dispatches. */
    } else if (cb->on_body != NULL) {
        if (data == NULL) {
            data = r->body.len ? r->body.data : "";
            len = r->body.len;
        }
        cb->on_body(arg, data, len);
    }
    r->state = S_DONE;
    return MB_OK;
}

static int finish(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg)
{
    return finish_body(r, cb, arg, NULL, 0);
}

/* ---------------------------------------------------------------- headers */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);

    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

static bool media_is(const char *v, size_t n, const char *type)
{
    size_t tl = strlen(type);

    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    return n >= tl && strncasecmp(v, type, tl) == 0 &&
           (n == tl || v[tl] == ';' || v[tl] == ' ' || v[tl] == '\t');
}

static int status_line(struct mb_http_resp *r, const char *l, size_t n)
{
    /* HTTP/1.x SSS[ reason] */
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
        l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
        (n > 12 && l[12] != ' '))
        return fail(r, "not an HTTP/1.x status line");
    r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    r->keep_alive = l[7] == '1'; /* HTTP/1.0 closes unless it says keep-alive */
    return MB_OK;
}

static int header_line(struct mb_http_resp *r, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);

    if (colon == NULL || colon == l)
        return fail(r, "a malformed header line");
    size_t nl = (size_t)(colon - l);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    while (vl > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(l, name, nl) == 0)
    if (IS("content-length")) {
        uint64_t x = 0;
        if (vl == 0 || vl > 18 || strspn(v, "0123456789") < vl)
            return fail(r, "a malformed Content-Length");
        for (size_t i = 0; i < vl; i++)
            x = x * 10 + (uint64_t)(v[i] - '0');
        if (r->has_length && x != r->remaining)
            return fail(r, "conflicting Content-Length headers");
        r->has_length = true;
        r->remaining = x;
    } else if (IS("transfer-encoding")) {
        /* chunked must be the last coding; anything else is not supported */
        if (!has_token(v, vl, "chunked"))
            return fail(r, "an unsupported Transfer-Encoding");
        r->chunked = true;
    } else if (IS("connection")) {
        if (has_token(v, vl, "close"))
            r->keep_alive = false;
        else if (has_token(v, vl, "keep-alive"))
            r->keep_alive = true;
    } else if (IS("content-type")) {
        r->json = media_is(v, vl, "application/json");
        r->sse = !r->json && media_is(v, vl, "text/event-stream");
    } else if (IS("mcp-session-id")) {
        if (vl == 0 || vl >= sizeof(r->session_id))
            return fail(r, "an Mcp-Session-Id that is empty or too long");
        for (size_t i = 0; i < vl; i++)
            if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
                return fail(r, "an Mcp-Session-Id with characters outside visible ASCII");
        memcpy(r->session_id, v, vl);
        r->session_id[vl] = '\0';
        r->has_session = true;
    }
#undef IS
    return MB_OK;
}

/* The headers ended: choose how the body is framed. */
static int headers_end(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg)
{
    if (r->status < 200) { /* 1xx: another status line follows */
        int keep = r->keep_alive;
        mb_http_resp_reset(r);
        r->keep_alive = keep;
        return MB_OK;
    }
    r->headers_done = true;
    if (r->chunked)
        r->has_length = false; /* chunked wins (RFC 9112 6.3) */
    if (cb->on_headers != NULL)
        cb->on_headers(arg);
    if (r->status == 204 || r->status == 304) {
        r->state = S_DONE;
        return finish(r, cb, arg);
    }
    if (r->chunked) {
        r->state = S_CHUNK_SIZE;
    } else if (r->has_length) {
        if (!r->sse && r->remaining > r->max_body)
            return fail(r, "a response body larger than the message size limit");
        r->state = S_BODY_LENGTH;
        if (r->remaining == 0)
            return finish(r, cb, arg);
    } else {
        r->state = S_BODY_EOF;
        r->keep_alive = false;
    }
    return MB_OK;
}

static int chunk_size(struct mb_http_resp *r, const char *l, size_t n)
{
    uint64_t x = 0;
    size_t i = 0;

    for (; i < n && i < 16; i++) {
        char c = l[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        x = x * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
        return fail(r, "a malformed chunk size");
    r->remaining = x;
    return MB_OK;
}

/* Takes bytes up to and including a LF. When a whole line is there,
 * *complete is set and *l / *ll are the line without its CR LF: read in
 * place when it is all in p (the usual case: no copy), else gathered in
 * r->line. */
static int take_line(struct mb_http_resp *r, const char *p, size_t n, size_t *i, bool *complete,
                     const char **l, size_t *ll)
{
    const char *nl = memchr(p + *i, '\n', n - *i);
    size_t end = nl ? (size_t)(nl - p) : n;

    r->header_bytes += end - *i + (nl ? 1 : 0);
    if (r->header_bytes > MB_HTTP_RESP_MAX_HEADERS)
        return fail(r, "response headers larger than 64 KiB");
    *complete = nl != NULL;
    if (nl != NULL && r->line.len == 0) {
        *l = p + *i;
        *ll = end - *i;
    } else {
        if (mb_buf_append(&r->line, p + *i, end - *i) != 0)
            return fail(r, "out of memory");
        *l = r->line.data;
        *ll = r->line.len;
    }
    *i = nl ? end + 1 : n;
    if (*complete && *ll > 0 && (*l)[*ll - 1] == '\r')
        (*ll)--;
    return MB_OK;
}

int mb_http_resp_feed(struct mb_http_resp *r, const char *p, size_t n, size_t *used,
                      const struct mb_http_resp_cb *cb, void *arg)
{
    size_t i = 0;
    int rc = MB_OK;

    while (i < n && r->state != S_DONE) {
        bool complete;
        switch (r->state) {
        case S_STATUS:
        case S_HEADERS:
        case S_CHUNK_SIZE:
        case S_CHUNK_CRLF:
        case S_TRAILERS: {
            const char *l = NULL;
            size_t ll = 0;
            if (take_line(r, p, n, &i, &complete, &l, &ll) != MB_OK)
                return MB_ERR;
            if (!complete)
                break;
            if (r->state == S_STATUS) {
                rc = status_line(r, l, ll);
                if (rc == MB_OK)
                    r->state = S_HEADERS;
            } else if (r->state == S_HEADERS) {
                if (ll == 0)
                    rc = headers_end(r, cb, arg);
                else
                    rc = header_line(r, l, ll);
            } else if (r->state == S_CHUNK_SIZE) {
                rc = chunk_size(r, l, ll);
                if (rc == MB_OK)
                    r->state = r->remaining == 0 ? S_TRAILERS : S_CHUNK_DATA;
            } else if (r->state == S_CHUNK_CRLF) {
                if (ll != 0)
                    rc = fail(r, "a chunk not followed by CRLF");
                r->state = S_CHUNK_SIZE;
            } else { /* trailers: ignored up to the empty line */
                if (ll == 0)
                    rc = finish(r, cb, arg);
            }
            mb_buf_reset(&r->line);
            if (rc != MB_OK)
                return MB_ERR;
            break;
        }
        case S_BODY_LENGTH:
        case S_CHUNK_DATA: {
            size_t take = n - i;
            if ((uint64_t)take > r->remaining)
                take = (size_t)r->remaining;
            if (r->state == S_BODY_LENGTH && !r->sse && r->body.len == 0 && take == r->remaining) {
                /* The whole body is in p (headers_end checked its size):
                 * handed over in place, not copied. */
                r->body_bytes += take;
                i += take;
                r->remaining = 0;
                finish_body(r, cb, arg, take ? p + i - take : "", take);
                break;
            }
            if (body_bytes(r, p + i, take, cb, arg) != MB_OK)
                return MB_ERR;
            i += take;
            r->remaining -= take;
            if (r->remaining == 0) {
                if (r->state == S_CHUNK_DATA)
                    r->state = S_CHUNK_CRLF;
                else if (finish(r, cb, arg) != MB_OK)
                    return MB_ERR;
            }
            break;
        }
        case S_BODY_EOF:
            if (body_bytes(r, p + i, n - i, cb, arg) != MB_OK)
                return MB_ERR;
            i = n;
            break;
        default:
            break;
        }
    }
    *used = i;
    return r->state == S_DONE ? MB_OK : MB_AGAIN;
}

int mb_http_resp_eof(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg)
{
    if (r->state == S_DONE)
        return MB_OK;
    if (r->state == S_BODY_EOF)
        return finish(r, cb, arg);
    return fail(r, r->headers_done ? "the connection closed in the middle of the body"
                                   : "the connection closed before the response headers");
}
