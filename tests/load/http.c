/*
 * tests/load/http.c — see http.h. Header names are matched case-insensitively;
 * the values the client acts on are Content-Length, Transfer-Encoding,
 * Connection, Content-Type and Mcp-Session-Id. HTTP/1.0 responses close the
 * connection unless they say keep-alive.
 */
#include "tests/load/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *find_blank_line(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            return buf + i + 2;
        if (buf[i] == '\n' && buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return buf + i + 3;
    }
    return NULL;
}

/* Whether the comma-separated value v contains token (case-insensitive). */
static int has_token(const char *v, size_t vl, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t b = i;
        while (i < vl && v[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - b == tl && strncasecmp(v + b, token, tl) == 0)
            return 1;
    }
    return 0;
}

long mb_load_http_parse_head(const char *buf, size_t len, struct mb_load_http_resp *r)
{
    const char *end = find_blank_line(buf, len);
    if (!end)
        return len > 65536 ? -1 : 0;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    if (end - buf < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ')
        return -1;
    int http10 = buf[7] == '0';
    if (buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
        buf[11] > '9')
        return -1;
    r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    int keep_alive = 0;
    const char *p = memchr(buf, '\n', (size_t)(end - buf));
    p++;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break; /* the blank line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return -1;
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            int64_t n = 0;
            if (vl == 0 || vl > 15)
                return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                n = n * 10 + (v[i] - '0');
            }
            if (r->content_length >= 0 && r->content_length != n)
                return -1;
            r->content_length = n;
        } else if (nl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            if (has_token(v, vl, "chunked"))
                r->chunked = 1;
        } else if (nl == 10 && strncasecmp(p, "Connection", 10) == 0) {
            if (has_token(v, vl, "close"))
                r->close = 1;
            if (has_token(v, vl, "keep-alive"))
                keep_alive = 1;
        } else if (nl == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
            if (vl >= 17 && strncasecmp(v, "text/event-stream", 17) == 0)
                r->sse = 1;
        } else if (nl == 14 && strncasecmp(p, "Mcp-Session-Id", 14) == 0) {
            if (vl == 0 || vl >= sizeof(r->session_id))
                return -1;
            memcpy(r->session_id, v, vl);
            r->session_id[vl] = '\0';
            r->has_session = 1;
        }
        p = eol + 1;
    }
    if (http10 && !keep_alive)
        r->close = 1;
    /* Chunked wins over Content-Length (RFC 9112 §6.3). */
    if (r->chunked)
        r->content_length = -1;
    return (long)(end - buf);
}

int mb_load_http_bodyless(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* Reads a hex chunk size line at buf[*i]; moves *i past its line end. */
static int chunk_size(const char *buf, size_t len, size_t *i, uint64_t *size)
{
    uint64_t n = 0;
    size_t j = *i, digits = 0;
    for (; j < len; j++) {
        char c = buf[j];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (++digits > 15)
            return -1;
        n = n * 16 + (uint64_t)d;
    }
    if (j == len)
        return 0;
    if (digits == 0)
        return -1;
    /* chunk extensions (";name=value") are allowed and ignored */
    const char *nl = memchr(buf + j, '\n', len - j);
    if (!nl)
        return len - j > 4096 ? -1 : 0;
    *i = (size_t)(nl - buf) + 1;
    *size = n;
    return 1;
}

long mb_load_http_dechunk(char *buf, size_t len, size_t *out_len)
{
    /* Pass 1: is the whole body there? Nothing is moved until it is. */
    size_t i = 0;
    for (;;) {
        uint64_t n;
        int rc = chunk_size(buf, len, &i, &n);
        if (rc <= 0)
            return rc;
        if (n == 0)
            break;
        if (len - i < n + 1)
            return 0;
        i += n;
        if (buf[i] == '\r') {
            if (len - i < 2)
                return 0;
            i++;
        }
        if (buf[i] != '\n')
            return -1;
        i++;
    }
    /* trailers, then the blank line */
    for (;;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            return len - i > 4096 ? -1 : 0;
        size_t ll = (size_t)(nl - (buf + i));
        i = (size_t)(nl - buf) + 1;
        if (ll == 0 || (ll == 1 && nl[-1] == '\r'))
            break;
    }
    size_t total = i;
    /* Pass 2: compact the chunk data to the front. */
    size_t r = 0, w = 0;
    for (;;) {
        uint64_t n;
        chunk_size(buf, total, &r, &n);
        if (n == 0)
            break;
        memmove(buf + w, buf + r, n);
        w += n;
        r += n;
        r += buf[r] == '\r' ? 2 : 1;
    }
    *out_len = w;
    return (long)total;
}

int mb_load_sse_next(const char *buf, size_t len, size_t *pos, char *data, size_t cap, size_t *dlen)
{
    for (;;) {
        size_t i = *pos;
        size_t dl = 0;
        int has_data = 0;
        for (;;) {
            const char *nl = memchr(buf + i, '\n', len - i);
            if (!nl)
                return 0; /* an unterminated event is discarded (the spec says so) */
            size_t le = (size_t)(nl - buf);
            size_t ll = le - i;
            if (ll > 0 && buf[le - 1] == '\r')
                ll--;
            const char *line = buf + i;
            i = le + 1;
            if (ll == 0)
                break; /* the event ends */
            if (ll >= 5 && memcmp(line, "data", 4) == 0 && (ll == 4 || line[4] == ':')) {
                const char *v = line + 5;
                size_t vl = ll - 5;
                if (vl > 0 && *v == ' ') {
                    v++;
                    vl--;
                }
                size_t need = vl + (has_data ? 1 : 0);
                if (dl + need > cap)
                    return -1;
                if (has_data)
                    data[dl++] = '\n';
                memcpy(data + dl, v, vl);
                dl += vl;
                has_data = 1;
            } else if (ll == 4 && memcmp(line, "data", 4) == 0) {
                if (dl + (has_data ? 1 : 0) > cap)
                    return -1;
                if (has_data)
                    data[dl++] = '\n';
                has_data = 1;
            }
            /* event:, id:, retry: and ":" comments are not needed here */
        }
        *pos = i;
        if (has_data) {
            *dlen = dl;
            return 1;
        }
    }
}

long mb_load_http_request(char *out, size_t cap, const char *path, const char *host,
                          const char *session, const char *protocol_version,
                          const char *extra_headers, const char *body, size_t body_len)
{
    int has_s = session && session[0];
    int has_v = protocol_version && protocol_version[0];
    int n = snprintf(out, cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n"
                     "%s%s%s%s%s%s%s\r\n",
                     path, host, body_len, has_s ? "Mcp-Session-Id: " : "", has_s ? session : "",
                     has_s ? "\r\n" : "", has_v ? "MCP-Protocol-Version: " : "",
                     has_v ? protocol_version : "", has_v ? "\r\n" : "",
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n + body_len > cap)
        return -1;
    memcpy(out + n, body, body_len);
    return (long)(n + body_len);
}
