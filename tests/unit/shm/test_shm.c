/*
 * tests/unit/shm/test_shm.c — the region (shm/shm.c): create/attach round
 * trip, refusal of another layout major or a damaged file, atomic replacement
 * of an old file, and the worker table's life cycle.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "shm/counters.h"
#include "shm/layout.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

static void on_segv(int sig)
{
    _exit(42);
}

Test(shm, create_attach_round_trip)
{
    char path[128], err[256];
    shm_test_path(path, sizeof(path), "rt");
    struct mb_shm *w = shm_test_create(path, 6);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode is %o", st.st_mode & 0777);
    cr_expect_eq((uint64_t)st.st_size, w->hdr->total_size);
    cr_expect_eq(w->hdr->state, MB_SHM_INITIALIZING);
    cr_expect_eq(w->hdr->master_pid, getpid());

    mb_shm_set_generation(w, 7);
    mb_shm_publish(w);
    int idx = mb_shm_worker_alloc(w, 3, 7);
    cr_assert_geq(idx, 0);
    mb_shm_worker_started(w, (uint32_t)idx, 4242);
    mb_counters_add(w, (uint32_t)idx, MB_CTR_REQUESTS_TOTAL, 5);

    struct mb_shm *r = NULL;
    cr_assert_eq(mb_shm_attach(path, &r, err, sizeof(err)), 0, "attach: %s", err);
    cr_expect(r->readonly);
    cr_expect_eq(r->hdr->layout_major, MB_SHM_LAYOUT_MAJOR);
    cr_expect_eq(r->hdr->generation, 7);
    cr_expect_eq(r->hdr->state, MB_SHM_READY);
    cr_expect_eq(r->worker_capacity, 6);
    cr_expect_eq(r->ncounters, MB_CTR__COUNT);
    cr_expect_eq(r->nhists, MB_HIST__COUNT);
    cr_expect_eq(r->workers[idx].pid, 4242);
    cr_expect_eq(r->workers[idx].slot, 3);
    cr_expect_eq(r->workers[idx].state, MB_WORKER_STARTING);
    cr_expect_eq(mb_counters_sum(r, MB_CTR_REQUESTS_TOTAL), 5);
    /* Sections are cache-line aligned and inside the file. */
    for (uint32_t i = 0; i < r->hdr->nsections; i++) {
        cr_expect_eq(r->hdr->sections[i].offset % 64, 0);
        cr_expect_leq(r->hdr->sections[i].offset +
                          (uint64_t)r->hdr->sections[i].entry_size * r->hdr->sections[i].count,
                      r->hdr->total_size);
    }
    /* The reader's mapping really is read-only: a write faults. */
    pid_t pid = shm_test_fork();
    if (pid == 0) {
        signal(SIGSEGV, on_segv);
        ((volatile struct mb_shm_header *)r->hdr)->generation = 1;
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 42, "the write faulted");
    cr_expect_eq(w->hdr->generation, 7);

    mb_shm_retire(w);
    cr_expect_eq(r->hdr->state, MB_SHM_RETIRED);
    cr_expect_gt(r->hdr->retired_ms, 0);
    mb_shm_close(&r);
    cr_expect_null(r);
    mb_shm_close(&w);
    cr_expect_null(w);

    /* A region left by a stopped gateway still attaches. */
    cr_assert_eq(mb_shm_attach(path, &r, err, sizeof(err)), 0, "attach: %s", err);
    cr_expect_eq(r->hdr->state, MB_SHM_RETIRED);
    cr_expect_eq(mb_counters_sum(r, MB_CTR_REQUESTS_TOTAL), 5);
    mb_shm_close(&r);
    unlink(path);
}

static void patch_u16(const char *path, off_t off, uint16_t v)
{
    int fd = open(path, O_WRONLY);
    cr_assert_neq(fd, -1);
    cr_assert_eq(pwrite(fd, &v, sizeof(v), off), (ssize_t)sizeof(v));
    close(fd);
}

Test(shm, other_layout_major_is_refused)
{
    char path[128], err[256] = "";
    shm_test_path(path, sizeof(path), "major");
    struct mb_shm *w = shm_test_create(path, 2);
    mb_shm_close(&w);
    patch_u16(path, offsetof(struct mb_shm_header, layout_major), MB_SHM_LAYOUT_MAJOR + 1);

    struct mb_shm *r = NULL;
    cr_expect_eq(mb_shm_attach(path, &r, err, sizeof(err)), MB_ERR);
    cr_expect_null(r);
    char want[256];
    snprintf(want, sizeof(want), "%s: shm layout major %d, this tool reads %d", path,
             MB_SHM_LAYOUT_MAJOR + 1, MB_SHM_LAYOUT_MAJOR);
    cr_expect_str_eq(err, want);
    unlink(path);
}

Test(shm, missing_bad_magic_and_damaged_files_are_refused)
{
    char path[128], err[256] = "";
    struct mb_shm *r = NULL;
    shm_test_path(path, sizeof(path), "bad");

    cr_expect_eq(mb_shm_attach(path, &r, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "no such file") != NULL, "%s", err);

    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 1000; i++)
        fputs("not a region ", f);
    fclose(f);
    cr_expect_eq(mb_shm_attach(path, &r, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "bad magic") != NULL, "%s", err);

    /* A truncated region: the header claims more than the file holds. */
    struct mb_shm *w = shm_test_create(path, 2);
    uint64_t size = w->hdr->total_size;
    mb_shm_close(&w);
    cr_assert_eq(truncate(path, (off_t)size - 64), 0);
    cr_expect_eq(mb_shm_attach(path, &r, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "damaged") != NULL, "%s", err);
    cr_expect_null(r);
    unlink(path);
}

Test(shm, create_replaces_old_file_and_old_mapping_survives)
{
    char path[128], err[256];
    shm_test_path(path, sizeof(path), "repl");
    struct mb_shm *a = shm_test_create(path, 2);
    mb_shm_set_generation(a, 1);
    struct mb_shm *b = shm_test_create(path, 4);
    mb_shm_set_generation(b, 2);
    /* The old mapping still works for processes that hold it. */
    mb_counters_add(a, 0, MB_CTR_BYTES_IN, 10);
    cr_expect_eq(mb_counters_sum(a, MB_CTR_BYTES_IN), 10);

    struct mb_shm *r = NULL;
    cr_assert_eq(mb_shm_attach(path, &r, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(r->hdr->generation, 2);
    cr_expect_eq(r->worker_capacity, 4);
    cr_expect_eq(mb_counters_sum(r, MB_CTR_BYTES_IN), 0);
    mb_shm_close(&r);
    mb_shm_close(&a);
    mb_shm_close(&b);
    unlink(path);
}

Test(shm, bad_params_and_unwritable_dir)
{
    char err[256] = "";
    struct mb_shm *s = NULL;
    struct mb_shm_params p = {.worker_capacity = 0};
    cr_expect_eq(mb_shm_create("/tmp/mb-shm-never", &p, &s, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "out of range") != NULL, "%s", err);
    p.worker_capacity = 2;
    cr_expect_eq(mb_shm_create("/nonexistent-dir/region", &p, &s, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "temporary file") != NULL, "%s", err);
    cr_expect_null(s);
}

Test(shm, worker_alloc_free_respawn)
{
    char path[128];
    shm_test_path(path, sizeof(path), "wk");
    struct mb_shm *s = shm_test_create(path, 3);

    int a = mb_shm_worker_alloc(s, 0, 1), b = mb_shm_worker_alloc(s, 1, 1),
        c = mb_shm_worker_alloc(s, 2, 1);
    cr_assert(a >= 0 && b >= 0 && c >= 0);
    cr_expect(a != b && b != c && a != c);
    cr_expect_eq(mb_shm_worker_alloc(s, 3, 1), -1, "a full table refuses");

    struct mb_shm_worker *w = mb_shm_worker_at(s, (uint32_t)b);
    cr_expect_eq(w->state, MB_WORKER_STARTING);
    cr_expect_eq(w->slot, 1);
    cr_expect_eq(w->restarts, 0);
    cr_expect_eq(w->last_exit_status, -1);
    mb_shm_worker_started(s, (uint32_t)b, 1001);
    cr_expect_eq(w->pid, 1001);
    cr_expect_gt(w->start_ms, 0);
    mb_shm_worker_set_state(s, (uint32_t)b, MB_WORKER_RUNNING);
    mb_shm_worker_conn_add(s, (uint32_t)b, 1);
    mb_shm_worker_conn_add(s, (uint32_t)b, 1);
    mb_shm_worker_conn_add(s, (uint32_t)b, -1);
    cr_expect_eq(w->connections, 1);
    /* what the worker counts next to it */
    mb_counters_add(s, (uint32_t)b, MB_CTR_CONNECTIONS_TOTAL, 2);
    mb_counters_add(s, (uint32_t)b, MB_CTR_CONNECTIONS_ACTIVE, 2);
    mb_counters_add(s, (uint32_t)b, MB_CTR_CONNECTIONS_ACTIVE, -1);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_ACTIVE), 1);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_TOTAL), 2);

    /* Killed with a signal: the record waits for a respawn in the same index. */
    mb_shm_worker_reaped(s, (uint32_t)b, 9 /* WTERMSIG 9 */, false);
    cr_expect_eq(w->state, MB_WORKER_EXITED);
    cr_expect_eq(w->last_exit_status, 9);
    cr_expect_eq(w->connections, 0);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_ACTIVE), 0, "gauge died with the worker");
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_TOTAL), 2, "counter kept");
    mb_shm_worker_respawn(s, (uint32_t)b);
    cr_expect_eq(w->state, MB_WORKER_STARTING);
    cr_expect_eq(w->restarts, 1);
    cr_expect_eq(w->pid, 0);
    cr_expect_eq(w->slot, 1);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_WORKER_RESTARTS), 1);
    mb_shm_worker_started(s, (uint32_t)b, 1002);
    cr_expect_eq(w->pid, 1002);
    mb_shm_worker_respawn(s, (uint32_t)b);
    cr_expect_eq(w->restarts, 2);

    /* Freed: the index is handed out again, fresh. */
    mb_shm_worker_reaped(s, (uint32_t)a, 0, true);
    cr_expect_eq(mb_shm_worker_at(s, (uint32_t)a)->state, MB_WORKER_FREE);
    int again = mb_shm_worker_alloc(s, 5, 2);
    cr_expect_eq(again, a);
    cr_expect_eq(mb_shm_worker_at(s, (uint32_t)a)->generation, 2);
    cr_expect_eq(mb_shm_worker_at(s, (uint32_t)a)->last_exit_status, -1);

    mb_shm_worker_heartbeat(s, (uint32_t)c);
    cr_expect_gt(mb_shm_worker_at(s, (uint32_t)c)->heartbeat_ms, 0);
    cr_expect_str_eq(mb_shm_worker_state_name(MB_WORKER_DRAINING), "draining");
    cr_expect_str_eq(mb_shm_worker_state_name(99), "unknown");
    mb_shm_close(&s);
    unlink(path);
}

Test(shm, ratelimit_section_shape_and_seed)
{
    char path[128], path2[128], err[256];
    shm_test_path(path, sizeof(path), "rlsec");
    shm_test_path(path2, sizeof(path2), "rlsec");
    struct mb_shm *s = shm_test_create_rl(path, 4, 100);
    cr_expect_eq(s->ratelimit.nslots, 256);
    cr_expect_eq(s->ratelimit.capacity, 100);
    cr_expect_eq(s->ratelimit.owner, MB_RL_OWNER_NONE, "until a worker sets its own");
    const struct mb_shm_section *sec = mb_shm_section_find(s, MB_SHM_SEC_RATELIMIT);
    cr_assert_not_null(sec);
    cr_expect_eq(sec->entry_size, sizeof(struct mb_shm_rl_slot));
    cr_expect_eq(sec->offset % 64, 0);

    struct mb_shm_params same = {.worker_capacity = 4, .ratelimit_capacity = 100};
    struct mb_shm_params more = {.worker_capacity = 4, .ratelimit_capacity = 200};
    struct mb_shm_params none = {.worker_capacity = 4, .ratelimit_capacity = 0};
    struct mb_shm_params workers = {.worker_capacity = 5, .ratelimit_capacity = 100};
    cr_expect(mb_shm_same_shape(s, &same));
    cr_expect_not(mb_shm_same_shape(s, &more));
    cr_expect_not(mb_shm_same_shape(s, &none));
    cr_expect_not(mb_shm_same_shape(s, &workers));

    /* A reader hashes keys like the workers do; another region does not. */
    struct mb_shm *r = NULL;
    cr_assert_eq(mb_shm_attach(path, &r, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(r->ratelimit.nslots, 256);
    struct mb_rl_key a = mb_ratelimit_key(&s->ratelimit, "principal", 9);
    struct mb_rl_key b = mb_ratelimit_key(&r->ratelimit, "principal", 9);
    cr_expect(a.lo == b.lo && a.hi == b.hi);
    struct mb_shm *other = shm_test_create_rl(path2, 4, 100);
    struct mb_rl_key c = mb_ratelimit_key(&other->ratelimit, "principal", 9);
    cr_expect(a.lo != c.lo && a.hi != c.hi, "seeded per region");
    struct mb_rl_key d = mb_ratelimit_key(&s->ratelimit, "principam", 9);
    cr_expect(a.lo != d.lo && a.hi != d.hi);
    struct mb_rl_key e = mb_ratelimit_key(&s->ratelimit, "principal\0", 10);
    cr_expect(a.lo != e.lo && a.hi != e.hi, "the length counts");

    struct mb_shm_params huge = {.worker_capacity = 4,
                                 .ratelimit_capacity = MB_RL_MAX_CAPACITY + 1};
    struct mb_shm *h = NULL;
    cr_expect_eq(mb_shm_create(path2, &huge, &h, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "rate-limit capacity") != NULL, "%s", err);
    mb_shm_close(&r);
    mb_shm_close(&other);
    mb_shm_close(&s);
    unlink(path);
    unlink(path2);
}
