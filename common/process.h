/*
 * common/process.h — the contract between the master and a worker process.
 *
 * master/ and worker/ never include each other (DESIGN §6); this is the one
 * place where they meet. The master forks, and the child calls
 * mb_worker_main() with what it inherited:
 *
 *   - conf: the configuration generation the worker serves (read only; the
 *     worker never frees it, it dies with the process);
 *   - shm: the shared region, already mapped MAP_SHARED by the master;
 *   - slot: the worker slot (0 .. workers-1); a respawned worker gets the same
 *     slot and the same listening sockets;
 *   - generation: the config generation, counted up by each successful reload;
 *   - worker_index: this worker's record in the shm worker table; the master
 *     filled pid, slot, generation and state STARTING before the fork, the
 *     worker sets RUNNING when it accepts, DRAINING when it stops accepting;
 *   - listen_fds: this slot's listening sockets, one per conf server.listen
 *     entry and in that order, non-blocking, SO_REUSEPORT, already listening.
 *     The worker closes every other inherited descriptor it does not need.
 *   - metrics_fd: this slot's socket of the metrics endpoint (metrics.listen),
 *     of the same kind, or -1 when metrics.enabled is false. The worker
 *     serves /metrics, /healthz and /readyz on it.
 *
 * Signals the master sends a worker: QUIT = graceful stop (stop accepting,
 * finish in-flight requests within server.shutdown_timeout, close WebSockets
 * with 1001, exit 0); TERM = fast stop (close everything, exit 0); USR1 =
 * reopen logs. A worker exits 0 when told to stop, 1 on a runtime error (it is
 * respawned) and 2 on a fatal error (it is not).
 */
#ifndef MB_COMMON_PROCESS_H
#define MB_COMMON_PROCESS_H

#include <stddef.h>
#include <stdint.h>

struct mb_conf;
struct mb_shm;

struct mb_worker_args {
    const struct mb_conf *conf;
    struct mb_shm *shm;
    int slot;
    uint64_t generation;
    uint32_t worker_index;
    const int *listen_fds;
    size_t nlisten;
    int metrics_fd;
};

/* Implemented in worker/; returns the process exit status. */
int mb_worker_main(const struct mb_worker_args *args);

#endif
