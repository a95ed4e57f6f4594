/*
 * tests/unit/style/test_format.c — the repository's C is formatted by its
 * .clang-format (CONVENTIONS rule 13): the same check as `make
 * check-format`, run by `make test` so CI holds it. `make format` fixes what
 * it reports. Runs from the repository root.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(format, every_tracked_c_file_is_clang_formatted, .timeout = 120)
{
    static char out[65536];
    int rc = run("git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror 2>&1 | "
                 "grep 'error:' | cut -d: -f1 | sort -u",
                 out, sizeof(out));
    cr_assert_neq(rc, -1);
    cr_expect_eq(out[0], '\0', "not formatted (run `make format`):\n%s", out);
}

Test(format, the_check_catches_a_misformatted_file)
{
    char path[] = "/tmp/mb-format-XXXXXX.c";
    int fd = mkstemps(path, 2);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("int  main( void ){return 0;}\n", f);
    fclose(f);
    char cmd[256], out[4096];
    snprintf(cmd, sizeof(cmd), "clang-format --style=file:.clang-format --dry-run --Werror %s 2>&1",
             path);
    int rc = run(cmd, out, sizeof(out));
    remove(path);
    cr_assert_neq(rc, 0, "clang-format accepted a misformatted file: %s", out);
}
