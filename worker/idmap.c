/*
 * worker/idmap.c — the id table (see idmap.h).
 */
#include "worker/idmap.h"

#include <stdlib.h>

#include "common/errors.h"

static size_t slot_of(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static int grow(struct mb_idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct mb_idmap_slot *s = calloc(cap, sizeof(*s));
    if (s == NULL)
        return MB_ERR;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].id == 0)
            continue;
        size_t j = slot_of(m->slots[i].id, cap);
        while (s[j].id != 0)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

int mb_idmap_put(struct mb_idmap *m, uint64_t id, void *value)
{
    if (id == 0)
        return MB_ERR;
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
        return MB_ERR;
    size_t j = slot_of(id, m->cap);
    while (m->slots[j].id != 0) {
        if (m->slots[j].id == id)
            return MB_ERR;
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j].id = id;
    m->slots[j].value = value;
    m->count++;
    return 0;
}

static long find(const struct mb_idmap *m, uint64_t id)
{
    if (m->cap == 0 || id == 0)
        return -1;
    size_t j = slot_of(id, m->cap);
    while (m->slots[j].id != 0) {
        if (m->slots[j].id == id)
            return (long)j;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void *mb_idmap_get(const struct mb_idmap *m, uint64_t id)
{
    long j = find(m, id);
    return j < 0 ? NULL : m->slots[j].value;
}

void *mb_idmap_del(struct mb_idmap *m, uint64_t id)
{
    long f = find(m, id);
    if (f < 0)
        return NULL;
    size_t i = (size_t)f, mask = m->cap - 1;
    void *v = m->slots[i].value;
    /* Backward shift: move later members of the probe run into the hole
     * when their home slot does not lie between the hole and them. */
    for (size_t j = (i + 1) & mask; m->slots[j].id != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].id, m->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].id = 0;
    m->slots[i].value = NULL;
    m->count--;
    return v;
}

void mb_idmap_free(struct mb_idmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
