/*
 * tests/unit/man/test_mandoc.c — every manual page in man/ is clean under
 * `mandoc -Tlint` at warning level (style remarks, such as references to
 * pages not installed on this machine, are not failures). Runs from the
 * repository root, as make test does.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int lint(const char *page, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mandoc -Tlint -W warning 'man/%s' 2>&1", page);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(man, every_page_is_lint_clean)
{
    DIR *d = opendir("man");
    cr_assert_not_null(d, "run from the repository root");
    struct dirent *e;
    int pages = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 3 || e->d_name[n - 2] != '.' || !strchr("158", e->d_name[n - 1]))
            continue;
        char out[8192];
        int rc = lint(e->d_name, out, sizeof(out));
        cr_expect_eq(rc, 0, "mandoc -Tlint man/%s exited %d:\n%s", e->d_name, rc, out);
        cr_expect_eq(out[0], '\0', "mandoc -Tlint man/%s:\n%s", e->d_name, out);
        pages++;
    }
    closedir(d);
    cr_assert_geq(pages, 1, "no manual page found in man/");
}

Test(man, lint_catches_a_broken_page)
{
    /* The check above must be able to fail: a page with an unknown macro. */
    char path[] = "/tmp/mb-man-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(".Dd November 27, 2026\n.Dt BROKEN 1\n.Os\n.Sh NAME\n.Nm broken\n.Zz nonsense\n", f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "mandoc -Tlint -W warning %s >/dev/null 2>&1", path);
    int st = system(cmd);
    unlink(path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "mandoc accepted a broken page");
}
