/*
 * master/main.c — the mcp-bridge command line: check a configuration, signal
 * a running master, or start one (in the foreground or as a daemon).
 *
 * Start-up does everything that can fail for a reason the operator must see
 * (configuration, listening sockets) before it detaches, and the starting
 * process waits until the daemon reports its first workers running: `mcp-bridge
 * -c FILE` exits 0 only when the gateway serves, and 1 (with the reason on
 * stderr) otherwise. The daemon keeps the working directory, so relative paths
 * in the configuration mean the same to it as to the operator who started it.
 *
 * The options are declared once in CLI_OPTIONS, which generates the getopt
 * tables and --help.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "master/listen.h"
#include "master/master.h"
#include "master/pidfile.h"
#include "master/shmsize.h"
#include "shm/shm.h"

#define DEFAULT_CONF   "/etc/mcp-bridge/gateway.yaml"
#define WORKER_RECORDS 512 /* shm worker table: enough for every slot of two generations */

/* X(short, long, argument name or NULL, help) */
#define CLI_OPTIONS(X)                                                                             \
    X('c', "config", "FILE", "configuration file (default " DEFAULT_CONF ")")                      \
    X('t', "test", NULL, "check the configuration, print \"configuration ok\" or the error, exit") \
    X('g', "foreground", NULL, "stay in the foreground (do not daemonize)")                        \
    X('p', "pid-file", "FILE", "pid file (overrides pid_file of the configuration)")               \
    X('s', "signal", "SIGNAL", "send reload|stop|quit|reopen to the running master, exit")         \
    X('v', "version", NULL, "print the version and exit")                                          \
    X('h', "help", NULL, "print this help and exit")

static void usage(FILE *out)
{
    fprintf(out, "usage: mcp-bridge [options]\n\nMCP gateway (version %s).\n\noptions:\n",
            MB_VERSION);
#define X(s, l, arg, help) fprintf(out, "  -%c, --%-11s %-7s %s\n", s, l, arg ? arg : "", help);
    CLI_OPTIONS(X)
#undef X
    fprintf(out, "\nsignals to the master: HUP reload, TERM/INT fast stop, QUIT graceful stop,\n"
                 "USR1 reopen logs. See mcp-bridge(8) and gateway.yaml(5).\n");
}

struct cli {
    const char *conf_path;
    const char *pid_file;
    const char *signal;
    int test, foreground;
};

static int parse_cli(int argc, char **argv, struct cli *cli)
{
    static const struct option longopts[] = {
#define X(s, l, arg, help) {l, arg ? required_argument : no_argument, NULL, s},
        CLI_OPTIONS(X)
#undef X
            {NULL, 0, NULL, 0}};
    /* The getopt string ("c:tgp:s:vh") from the same table. */
    static const struct {
        char s;
        int arg;
    } table[] = {
#define X(s, l, arg, help) {s, arg != NULL},
        CLI_OPTIONS(X)
#undef X
    };
    static char built[64];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        built[n++] = table[i].s;
        if (table[i].arg)
            built[n++] = ':';
    }
    built[n] = '\0';

    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, built, longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->conf_path = optarg;
            break;
        case 't':
            cli->test = 1;
            break;
        case 'g':
            cli->foreground = 1;
            break;
        case 'p':
            cli->pid_file = optarg;
            break;
        case 's':
            cli->signal = optarg;
            break;
        case 'v':
            printf("mcp-bridge version %s\n", MB_VERSION);
            exit(MB_EXIT_OK);
        case 'h':
            usage(stdout);
            exit(MB_EXIT_OK);
        default:
            if (optopt)
                fprintf(stderr, "mcp-bridge: option -%c: %s\n", optopt,
                        strchr(built, optopt) ? "needs an argument" : "unknown option");
            else
                fprintf(stderr, "mcp-bridge: %s: unknown option\n", argv[optind - 1]);
            usage(stderr);
            return MB_ERR;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mcp-bridge: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return MB_ERR;
    }
    if (cli->conf_path == NULL)
        cli->conf_path = DEFAULT_CONF;
    return MB_OK;
}

/* -s: finds the master through the pid file and signals it. */
static int send_signal(const struct cli *cli)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    int sig = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(cli->signal, names[i].name) == 0)
            sig = names[i].sig;
    if (sig == 0) {
        fprintf(stderr, "mcp-bridge: -s %s: expected reload, stop, quit or reopen\n", cli->signal);
        return MB_EXIT_FATAL;
    }
    char err[1024];
    struct mb_conf *conf = NULL;
    const char *pid_path = cli->pid_file;
    if (pid_path == NULL) {
        if (mb_conf_load(cli->conf_path, &conf, err, sizeof(err)) != MB_OK) {
            fprintf(stderr, "mcp-bridge: cannot find the pid file: %s\n", err);
            return MB_EXIT_ERROR;
        }
        pid_path = conf->pid_file;
    }
    int rc = MB_EXIT_OK;
    pid_t pid = mb_pidfile_read(pid_path, err, sizeof(err));
    if (pid < 0) {
        fprintf(stderr, "mcp-bridge: %s\n", err);
        rc = MB_EXIT_ERROR;
    } else if (kill(pid, sig) == -1) {
        fprintf(stderr, "mcp-bridge: kill(%d, %s): %s\n", (int)pid, cli->signal, strerror(errno));
        rc = MB_EXIT_ERROR;
    }
    mb_conf_free(&conf);
    return rc;
}

/* Raises the soft fd limit to the hard one: every connection is a descriptor. */
static void raise_fd_limit(unsigned workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            mb_log_warn("setrlimit(RLIMIT_NOFILE, %llu) failed: %s",
                        (unsigned long long)rl.rlim_max, strerror(errno));
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    mb_log_info("fd limit %llu per process: about %llu client connections per worker, %llu "
                "with %u workers",
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_cur - 64,
                (unsigned long long)(rl.rlim_cur - 64) * workers, workers);
}

/* Detaches. The parent waits on a pipe until the daemon writes one byte
 * (serving) or closes it (failed), and exits 0 or 1 accordingly. Returns the
 * write end in the daemon. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1) {
        mb_log_error("pipe() failed: %s", strerror(errno));
        exit(MB_EXIT_ERROR);
    }
    pid_t pid = fork();
    if (pid == -1) {
        mb_log_error("fork() failed: %s", strerror(errno));
        exit(MB_EXIT_ERROR);
    }
    if (pid > 0) {
        char ok;
        close(p[1]);
        ssize_t n;
        do {
            n = read(p[0], &ok, 1);
        } while (n == -1 && errno == EINTR);
        if (n == 1)
            exit(MB_EXIT_OK);
        fprintf(stderr, "mcp-bridge: the daemon failed to start; see the error log\n");
        exit(MB_EXIT_ERROR);
    }
    close(p[0]);
    if (setsid() == -1)
        mb_log_warn("setsid() failed: %s", strerror(errno));
    int null = open("/dev/null", O_RDWR);
    if (null != -1) {
        dup2(null, 0);
        dup2(null, 1);
        if (mb_log_fd() != 2)
            dup2(mb_log_fd(), 2);
        if (null > 2)
            close(null);
    }
    return p[1];
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    char err[2048];
    if (parse_cli(argc, argv, &cli) != MB_OK)
        return MB_EXIT_FATAL;
    if (cli.signal)
        return send_signal(&cli);

    struct mb_conf *conf = NULL;
    if (mb_conf_load(cli.conf_path, &conf, err, sizeof(err)) != MB_OK) {
        fprintf(stderr, "%s\n", err);
        return cli.test ? MB_EXIT_ERROR : MB_EXIT_FATAL;
    }
    if (cli.test) {
        printf("%s: configuration ok\n", cli.conf_path);
        mb_conf_free(&conf);
        return MB_EXIT_OK;
    }
    char conf_abs[PATH_MAX];
    if (realpath(cli.conf_path, conf_abs) == NULL) {
        fprintf(stderr, "mcp-bridge: %s: %s\n", cli.conf_path, strerror(errno));
        return MB_EXIT_FATAL;
    }
    int rc = mb_log_open(conf->logging.error_log, conf->logging.level);
    if (rc != 0) {
        fprintf(stderr, "mcp-bridge: cannot open error log %s: %s\n", conf->logging.error_log,
                strerror(-rc));
        return MB_EXIT_FATAL;
    }
    mb_log_set_role("master", -1);
    raise_fd_limit(conf->workers);

    struct mb_listen_set socks = {0};
    if (mb_listen_build(conf, NULL, &socks, err, sizeof(err)) != MB_OK) {
        mb_log_error("%s", err);
        if (mb_log_fd() != 2)
            fprintf(stderr, "mcp-bridge: %s\n", err);
        return MB_EXIT_ERROR;
    }

    struct mb_master_opts opts = {.conf_path = conf_abs, .ready_fd = -1};
    if (!cli.foreground)
        opts.ready_fd = daemonize();

    /* A copy: a reload frees the first generation's conf, and the pid file
     * stays where it was at start. */
    char *pid_path = strdup(cli.pid_file ? cli.pid_file : conf->pid_file);
    if (pid_path == NULL) {
        mb_log_error("out of memory");
        return MB_EXIT_ERROR;
    }
    /* From the moment the pid file exists, `-s stop` may signal us: block
     * the signals the master handles until its handlers are in place
     * (mb_master_run), so such a signal waits instead of killing the master
     * mid-start with the pid file left behind (creating the region, caches
     * included, takes a moment). */
    sigset_t early;
    sigemptyset(&early);
    sigaddset(&early, SIGTERM);
    sigaddset(&early, SIGINT);
    sigaddset(&early, SIGQUIT);
    sigaddset(&early, SIGHUP);
    sigaddset(&early, SIGUSR1);
    sigprocmask(SIG_BLOCK, &early, NULL);
    if (mb_pidfile_write(pid_path, err, sizeof(err)) != MB_OK) {
        mb_log_error("%s", err);
        if (mb_log_fd() != 2 && cli.foreground)
            fprintf(stderr, "mcp-bridge: %s\n", err);
        return MB_EXIT_ERROR;
    }

    struct mb_shm *shm = NULL;
    /* The rate-limit table is sized even when rate_limit.enabled is false,
     * so a reload can switch limiting on without a new region (32 bytes per
     * slot, two slots per bucket: 4 MiB at the default 65536). The caches
     * are sized from caching.* (master/shmsize.c). A reload that changes
     * these sizes builds a successor region (master/cycle.c). */
    struct mb_shm_params params;
    mb_shmsize_params(conf, WORKER_RECORDS, &params);
    if (mb_shm_create(conf->shm.path, &params, &shm, err, sizeof(err)) != MB_OK) {
        mb_log_error("%s", err);
        mb_pidfile_remove(pid_path);
        return MB_EXIT_ERROR;
    }
    mb_log_info("mcp-bridge %s starting: %s, %u workers, shm %s", MB_VERSION, conf_abs,
                conf->workers, conf->shm.path);

    /* The master owns the region from here: a reload may replace it. */
    rc = mb_master_run(&opts, conf, &socks, shm);
    mb_pidfile_remove(pid_path);
    free(pid_path);
    return rc;
}
