/*
 * tests/unit/conf/test_manpage.c — man/gateway.yaml.5 documents every key of
 * the table in conf/keys.c: each key path has its own entry (".It Cm PATH"),
 * the entry names the key's type, and it says "not supported yet" exactly
 * when the key's feature is not built. Runs from the repository root.
 */
#include "conf/keys.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_page(void)
{
    FILE *f = fopen("man/gateway.yaml.5", "r");
    cr_assert_not_null(f, "man/gateway.yaml.5 not found (run from the repository root)");
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* The body of the entry ".It Cm <path>" (its line up to the next .It, .El or
 * .Ss), copied into out; 0 if there is no such entry. */
static int entry(const char *page, const char *path, char *out, size_t outlen)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "\n.It Cm %s", path);
    const char *p = page;

    cr_assert_lt((size_t)n, sizeof(head));
    while ((p = strstr(p, head)) != NULL) {
        char after = p[n];
        if (after == ' ' || after == '\n') {
            const char *start = p + 1, *end = start;
            do {
                end = strchr(end + 1, '\n');
            } while (end != NULL && strncmp(end, "\n.It ", 5) != 0 &&
                     strncmp(end, "\n.El", 4) != 0 && strncmp(end, "\n.Ss", 4) != 0);
            size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
            if (len >= outlen)
                len = outlen - 1;
            memcpy(out, start, len);
            out[len] = '\0';
            return 1;
        }
        p += n;
    }
    return 0;
}

Test(manpage, every_key_has_an_entry)
{
    char *page = read_page();
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        char body[2048];

        if (!entry(page, k->path, body, sizeof(body))) {
            cr_expect_fail("man/gateway.yaml.5 has no entry \".It Cm %s\"", k->path);
            continue;
        }
        /* "workers" reads "integer or auto"; the type word is there either way. */
        cr_expect_not_null(strstr(body, mb_conf_type_name(k->type)),
                           "%s: the entry does not say its type (%s):\n%s", k->path,
                           mb_conf_type_name(k->type), body);
        if (k->supported)
            cr_expect_null(strstr(body, "not supported yet"),
                           "%s is supported, but its entry says \"not supported yet\"", k->path);
        else
            cr_expect_not_null(strstr(body, "(not supported yet"),
                               "%s is not supported yet, but its entry does not say so", k->path);
    }
    free(page);
}

/* The reverse: no entry for a key that does not exist (a renamed key would
 * otherwise linger in the page). */
Test(manpage, every_entry_is_a_key)
{
    char *page = read_page();
    int entries = 0;
    for (const char *p = strstr(page, "\n.It Cm "); p != NULL; p = strstr(p + 1, "\n.It Cm ")) {
        char path[256];
        size_t n = strcspn(p + 8, " \n");
        cr_assert_lt(n, sizeof(path));
        memcpy(path, p + 8, n);
        path[n] = '\0';
        /* Value words are listed with .Cm inside entries, never as .It Cm. */
        cr_expect_not_null(mb_conf_key_find(path), "man page entry for unknown key %s", path);
        entries++;
    }
    cr_expect_eq((size_t)entries, mb_conf_keys_count());
    free(page);
}
