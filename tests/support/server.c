/*
 * tests/support/server.c — see server.h.
 */
#include "tests/support/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/net.h"
#include "tests/support/testutil.h"

pid_t mb_test_server_start(char *const argv[], uint16_t port, const char *log_path, int timeout_ms)
{
    pid_t pid = fork();
    if (pid == -1)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int out = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
                           : open("/dev/null", O_WRONLY);
        if (in == -1 || out == -1)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    while (mb_test_now_ms() < deadline) {
        int fd = mb_test_tcp_connect(port, 200);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -ECHILD;
        mb_test_sleep_ms(20);
    }
    mb_test_server_stop(&pid, 1000);
    return -ETIMEDOUT;
}

void mb_test_server_stop(pid_t *pid, int grace_ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 10) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        mb_test_sleep_ms(10);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}
