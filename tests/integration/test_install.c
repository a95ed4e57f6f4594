/*
 * tests/integration/test_install.c — `make install DESTDIR=... PREFIX=/usr`
 * with the build directory of this test run (MB_BUILD_DIR) lays out the
 * binaries, man pages, example configurations, the configuration of an
 * installed gateway (which passes `mcp-bridge -t`), the init script and the
 * systemd unit naming the installed paths, and the logrotate rule; a second
 * install keeps an operator's edited configuration. Also: every PromQL query
 * of scripts/grafana-dashboard.json parses (`promtool check rules`).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/daemon.h"
#include "tests/support/testutil.h"

static char dest[64];

static void cleanup(void)
{
    if (dest[0]) {
        char *argv[] = {"/bin/rm", "-rf", dest, NULL};
        int st;
        mb_test_run(argv, 30000, &st, NULL);
        dest[0] = '\0';
    }
}

static int run_sh(const char *cmd, char **out)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int status = -1;
    cr_assert_eq(mb_test_run(argv, 240000, &status, out), 0, "%s did not finish", cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_file(const char *rel, mode_t mode)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s%s", dest, rel);
    cr_expect_eq(stat(p, &st), 0, "%s was not installed", rel);
    if (mode)
        cr_expect_eq(st.st_mode & 0777, mode, "%s: mode %o", rel, st.st_mode & 0777);
}

static void make_install(void)
{
    const char *build = getenv("MB_BUILD_DIR");
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof(cmd), "make -s BUILD=%s DESTDIR=%s PREFIX=/usr install 2>&1",
             build && *build ? build : "build", dest);
    int rc = run_sh(cmd, &out);
    cr_assert_eq(rc, 0, "%s:\n%s", cmd, out);
    free(out);
}

Test(install, lays_out_every_file, .fini = cleanup, .timeout = 300)
{
    snprintf(dest, sizeof(dest), "/tmp/mb-install-XXXXXX");
    cr_assert_not_null(mkdtemp(dest));
    make_install();

    expect_file("/usr/sbin/mcp-bridge", 0755);
    expect_file("/usr/bin/mcp-bridge-shm", 0755);
    expect_file("/usr/share/man/man8/mcp-bridge.8", 0644);
    expect_file("/usr/share/man/man5/gateway.yaml.5", 0644);
    expect_file("/usr/share/man/man1/mcp-bridge-shm.1", 0644);
    expect_file("/usr/share/doc/mcp-bridge/examples/gateway.yaml", 0644);
    expect_file("/usr/share/doc/mcp-bridge/examples/grafana-dashboard.json", 0644);
    expect_file("/etc/mcp-bridge/gateway.yaml", 0644);
    expect_file("/etc/init.d/mcp-bridge", 0755);
    expect_file("/usr/lib/systemd/system/mcp-bridge.service", 0644);
    expect_file("/etc/logrotate.d/mcp-bridge", 0644);

    /* The scripts name the installed daemon and configuration. */
    char p[256];
    snprintf(p, sizeof(p), "%s/etc/init.d/mcp-bridge", dest);
    char *init = mb_test_read_file(p, NULL);
    cr_assert_not_null(init);
    cr_expect(strstr(init, "DAEMON=${DAEMON:-/usr/sbin/mcp-bridge}") != NULL, "%s", init);
    cr_expect(strstr(init, "CONF=${CONF:-/etc/mcp-bridge/gateway.yaml}") != NULL);
    free(init);
    snprintf(p, sizeof(p), "%s/usr/lib/systemd/system/mcp-bridge.service", dest);
    char *unit = mb_test_read_file(p, NULL);
    cr_assert_not_null(unit);
    cr_expect(strstr(unit, "ExecStart=/usr/sbin/mcp-bridge -g -c /etc/mcp-bridge/gateway.yaml") !=
                  NULL,
              "%s", unit);
    cr_expect(strstr(unit, "ExecReload=/usr/sbin/mcp-bridge -t -c /etc/mcp-bridge/gateway.yaml") !=
                  NULL,
              "the unit tests the configuration before a reload");
    cr_expect(strstr(unit, "/usr/local") == NULL, "%s", unit);
    free(unit);

    /* The installed daemon accepts the installed configuration. */
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof(cmd), "%s/usr/sbin/mcp-bridge -t -c %s/etc/mcp-bridge/gateway.yaml 2>&1",
             dest, dest);
    cr_expect_eq(run_sh(cmd, &out), 0, "%s", out);
    free(out);

    /* A second install keeps an edited configuration. */
    snprintf(p, sizeof(p), "%s/etc/mcp-bridge/gateway.yaml", dest);
    cr_assert_eq(mb_test_write_file(p, "workers: 1\n"), 0);
    make_install();
    char *conf = mb_test_read_file(p, NULL);
    cr_expect_str_eq(conf, "workers: 1\n", "make install overwrote the operator's configuration");
    free(conf);
}

/* Every query of the dashboard as a recording rule, checked by promtool. */
Test(install, dashboard_queries_parse, .timeout = 60)
{
    char *text = mb_test_read_file("scripts/grafana-dashboard.json", NULL);
    cr_assert_not_null(text, "run from the repository root");
    cJSON *d = cJSON_Parse(text);
    cr_assert_not_null(d, "the dashboard is not JSON");
    free(text);
    char dir[] = "/tmp/mb-dash-XXXXXX", rules[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(rules, sizeof(rules), "%s/rules.yml", dir);
    FILE *f = fopen(rules, "w");
    cr_assert_not_null(f);
    fprintf(f, "groups:\n  - name: dashboard\n    rules:\n");
    int n = 0;
    const cJSON *panel;
    cJSON_ArrayForEach(panel, cJSON_GetObjectItemCaseSensitive(d, "panels"))
    {
        const cJSON *t;
        cr_expect(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(panel, "title")));
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(panel, "targets"))
        {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "expr");
            cr_assert(cJSON_IsString(e));
            /* Grafana's variable becomes a regex that matches anything. */
            char q[1024], *o = q;
            for (const char *s = e->valuestring; *s && o < q + sizeof(q) - 4; s++) {
                if (strncmp(s, "$job", 4) == 0) {
                    memcpy(o, ".*", 2);
                    o += 2;
                    s += 3;
                } else {
                    *o++ = *s == '\'' ? '"' : *s;
                }
            }
            *o = '\0';
            fprintf(f, "      - record: dashboard:q%d\n        expr: '%s'\n", n++, q);
        }
    }
    fclose(f);
    cJSON_Delete(d);
    cr_assert_gt(n, 10, "the dashboard has its panels");
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        cr_skip_test("promtool is not installed (Debian package prometheus): queries not parsed");
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof(cmd), "promtool check rules %s 2>&1", rules);
    cr_expect_eq(run_sh(cmd, &out), 0, "%s", out);
    free(out);
    unlink(rules);
    rmdir(dir);
}
