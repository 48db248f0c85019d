/*
 * warm.c — the cgroup-lock warmer's thread. minirun/runtime/cgroup_warm.py explains the lock and
 * decides when to warm; this file only does the writing.
 *
 * The thread writes "0" (= the writer itself) into the cgroup.procs of the group this process is
 * already in, every period, until a deadline: a migration that moves nothing, but keeps the
 * kernel's cgroup_threadgroup_rwsem in its slow mode, so that a container's own join does not
 * wait for an RCU grace period.
 *
 * Why a native thread rather than a Python one: a Python thread needs the GIL to run at all, and
 * while the main thread is importing and planning (the very time the warmer must be writing) it
 * got the GIL 1.5-2 ms late, and again after every write. This one never touches Python: cffi
 * releases the GIL around our calls, and the thread itself never takes it.
 *
 * The file is opened for each write, so that a lingering warmer holds no fd of its caller's
 * between writes (a scheduler worker counts its fds). The thread blocks every signal: they are
 * for the main thread (minirun-oci run forwards them to the container).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "minirun.h"

/* All of the warmer's state, under `lock`: the thread reads the deadline and records its writes;
 * the caller starts it, moves the deadline, and asks. */
static struct {
    pthread_mutex_t lock;
    int running;                /* a thread exists (it clears this as it ends) */
    long long until_ns;         /* CLOCK_MONOTONIC: the thread ends at its first look past this */
    long long last_write_ns;    /* when its last write returned; 0 before the first */
    long period_ns;
    char procs[PATH_MAX];       /* written only while no thread runs */
} warm = { .lock = PTHREAD_MUTEX_INITIALIZER };

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One no-op migration. 0 or -errno. */
static int write_self(const char *procs)
{
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = write(fd, "0", 1) == 1 ? 0 : -errno;
    close(fd);
    return err;
}

/* Decide under the lock whether to go on, so that a start() racing with our end either extends
 * a thread that will see the new deadline or finds none running and starts one. */
static int keep_going(void)
{
    pthread_mutex_lock(&warm.lock);
    int go = monotonic_ns() < warm.until_ns;
    if (!go)
        warm.running = 0;
    pthread_mutex_unlock(&warm.lock);
    return go;
}

static void *warm_loop(void *unused)
{
    struct timespec period = { .tv_sec = 0, .tv_nsec = warm.period_ns };
    while (keep_going()) {
        if (write_self(warm.procs) < 0) {      /* not root, group gone: nothing to warm */
            pthread_mutex_lock(&warm.lock);
            warm.running = 0;
            pthread_mutex_unlock(&warm.lock);
            return NULL;
        }
        pthread_mutex_lock(&warm.lock);
        warm.last_write_ns = monotonic_ns();
        pthread_mutex_unlock(&warm.lock);
        nanosleep(&period, NULL);
    }
    return NULL;
}

/* fork(): the child has no warmer thread, whatever the parent had, and must not inherit the
 * lock held by a thread that does not exist there. */
static void before_fork(void) { pthread_mutex_lock(&warm.lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&warm.lock); }
static void after_fork_child(void)
{
    warm.running = 0;
    warm.until_ns = 0;
    warm.last_write_ns = 0;
    pthread_mutex_unlock(&warm.lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

int mr_warm_start(const char *procs, long long until_ns, long period_ns)
{
    if (strlen(procs) >= sizeof(warm.procs))
        return -ENAMETOOLONG;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&warm.lock);
    int err = 0;
    if (warm.running) {
        if (until_ns > warm.until_ns)
            warm.until_ns = until_ns;
    } else if (procs[0] == '\0') {
        err = -ESRCH;                           /* "extend the running one", and none runs */
    } else {
        strcpy(warm.procs, procs);
        warm.until_ns = until_ns;
        warm.period_ns = period_ns;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);     /* the thread starts with this mask */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_t thread;
        err = -pthread_create(&thread, &attr, warm_loop, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        warm.running = err == 0;
    }
    pthread_mutex_unlock(&warm.lock);
    return err;
}

void mr_warm_set_deadline(long long until_ns)
{
    pthread_mutex_lock(&warm.lock);
    if (warm.running)
        warm.until_ns = until_ns;
    pthread_mutex_unlock(&warm.lock);
}

int mr_warm_status(long long *until_ns, long long *last_write_ns)
{
    pthread_mutex_lock(&warm.lock);
    int running = warm.running;
    *until_ns = warm.until_ns;
    *last_write_ns = warm.last_write_ns;
    pthread_mutex_unlock(&warm.lock);
    return running;
}

int mr_warm_write_now(void)
{
    pthread_mutex_lock(&warm.lock);
    char procs[PATH_MAX];
    strcpy(procs, warm.procs);
    pthread_mutex_unlock(&warm.lock);
    if (procs[0] == '\0')
        return -ENOENT;
    int err = write_self(procs);
    if (err == 0) {
        pthread_mutex_lock(&warm.lock);
        warm.last_write_ns = monotonic_ns();
        pthread_mutex_unlock(&warm.lock);
    }
    return err;
}
