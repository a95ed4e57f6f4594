/*
 * tests/support/wsframe.c — see wsframe.h. The accept token is
 * base64(SHA-1(key + the RFC 6455 GUID)), computed with OpenSSL.
 */
#include "tests/support/wsframe.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void mb_wsframe_make_key(char key[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        memset(raw, 0x5a, sizeof(raw));
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    key[24] = '\0';
}

int mb_wsframe_handshake_request(char *out, size_t cap, const char *host, const char *path,
                                 const char *key, const char *subprotocol)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, host, key, subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "");
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int mb_wsframe_header_value(const char *head, size_t len, const char *name, char *val, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', end - p);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            size_t vl = ve - v;
            if (vl >= cap)
                return -1;
            memcpy(val, v, vl);
            val[vl] = '\0';
            return 0;
        }
        p = eol + 1;
    }
    return -1;
}

int mb_wsframe_accept_token(const char *key, char out[29])
{
    char cat[64 + sizeof(ws_guid)];
    unsigned char sha[SHA_DIGEST_LENGTH];
    int n = snprintf(cat, sizeof(cat), "%s%s", key, ws_guid);
    if (n < 0 || (size_t)n >= sizeof(cat))
        return -1;
    SHA1((const unsigned char *)cat, (size_t)n, sha);
    EVP_EncodeBlock((unsigned char *)out, sha, sizeof(sha));
    return 0;
}

int mb_wsframe_handshake_check(const char *head, size_t len, const char *key, char *protocol,
                               size_t protocol_cap)
{
    if (len < 12 || strncmp(head, "HTTP/1.1 101", 12) != 0)
        return -1;
    char want[29], got[64];
    if (mb_wsframe_accept_token(key, want) != 0)
        return -1;
    if (mb_wsframe_header_value(head, len, "Sec-WebSocket-Accept", got, sizeof(got)) != 0 ||
        strcmp(got, want) != 0)
        return -1;
    if (protocol) {
        if (mb_wsframe_header_value(head, len, "Sec-WebSocket-Protocol", protocol, protocol_cap) !=
            0)
            protocol[0] = '\0';
    }
    return 0;
}

long mb_wsframe_encode(uint8_t *out, size_t cap, int fin, int opcode, const void *payload,
                       size_t len, int mask, uint32_t mask_key)
{
    size_t hl = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + (mask ? 4 : 0);
    if (hl + len > cap)
        return -1;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    size_t i = 2;
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        i = 4;
    } else {
        out[1] = 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
        i = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        uint8_t m[4] = {(uint8_t)(mask_key >> 24), (uint8_t)(mask_key >> 16),
                        (uint8_t)(mask_key >> 8), (uint8_t)mask_key};
        memcpy(out + i, m, 4);
        i += 4;
        memcpy(out + i, payload, len);
        mb_wsframe_unmask(out + i, len, m, 0);
    } else if (len) {
        memcpy(out + i, payload, len);
    }
    return (long)(i + len);
}

long mb_wsframe_parse(const uint8_t *buf, size_t len, struct mb_wsframe *f)
{
    if (len < 2)
        return 0;
    if (buf[0] & 0x70)
        return -1; /* no extension negotiated: reserved bits must be 0 */
    f->fin = (buf[0] & 0x80) != 0;
    f->opcode = buf[0] & 0x0f;
    f->masked = (buf[1] & 0x80) != 0;
    uint64_t pl = buf[1] & 0x7f;
    size_t i = 2;
    if (pl == 126) {
        if (len < 4)
            return 0;
        pl = ((uint64_t)buf[2] << 8) | buf[3];
        i = 4;
    } else if (pl == 127) {
        if (len < 10)
            return 0;
        pl = 0;
        for (int k = 0; k < 8; k++)
            pl = (pl << 8) | buf[2 + k];
        if (pl >> 63)
            return -1;
        i = 10;
    }
    if (f->opcode >= 0x8 && (pl > 125 || !f->fin))
        return -1;
    if (f->masked) {
        if (len < i + 4)
            return 0;
        memcpy(f->mask, buf + i, 4);
        i += 4;
    }
    if (len - i < pl)
        return 0;
    f->payload = buf + i;
    f->len = pl;
    return (long)(i + pl);
}

void mb_wsframe_unmask(uint8_t *p, size_t len, const uint8_t mask[4], size_t off)
{
    for (size_t k = 0; k < len; k++)
        p[k] ^= mask[(off + k) & 3];
}
