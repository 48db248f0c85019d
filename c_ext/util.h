/*
 * util.h — the few helpers the child may use: they only touch the stack and make syscalls.
 */
#ifndef MINIRUN_UTIL_H
#define MINIRUN_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "sync.h"

/* Record a failure: the errno in force, the step, the list index and the object involved. */
static inline int mr_fail(struct mr_err *err, int step, int index, const char *text)
{
    size_t i = 0;
    err->errno_ = errno ? errno : EINVAL;
    err->step = step;
    err->index = index;
    if (text)
        for (; text[i] && i < sizeof(err->text) - 1; i++)
            err->text[i] = text[i];
    err->text[i] = '\0';
    return -1;
}

/* crun's cleanup_close: `mr_autoclose int fd = open(...);` closes fd (if >= 0) when it leaves
 * scope, on every path out, so a failure path needs no close of its own. The return value is
 * computed first (mr_fail has read errno by then); errno is kept anyway, for a caller that
 * reads it after. Only close(2): safe in the child. `mr_take_fd` hands the fd on instead. */
static inline void mr_close_fd(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define mr_autoclose __attribute__((cleanup(mr_close_fd)))

static inline int mr_take_fd(int *fd)
{
    int taken = *fd;
    *fd = -1;
    return taken;
}

static inline uint64_t mr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Decimal text of n into buf (at least 24 bytes); returns buf. */
static inline char *mr_utoa(unsigned long n, char *buf)
{
    char tmp[24];
    int len = 0, i = 0;
    do { tmp[len++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (len) buf[i++] = tmp[--len];
    buf[i] = '\0';
    return buf;
}

/* "/proc/self/fd/N" for a fd, the name through which we act on an O_PATH handle. */
static inline char *mr_fd_path(int fd, char buf[40])
{
    static const char prefix[] = "/proc/self/fd/";
    size_t i;
    for (i = 0; prefix[i]; i++) buf[i] = prefix[i];
    mr_utoa((unsigned long)fd, buf + i);
    return buf;
}

/*
 * Changing ids: the system calls themselves, never glibc's setresuid/setresgid/setgroups. Those
 * make every thread of the process change too (POSIX wants the ids per process): they signal
 * each thread glibc knows of and wait for it. The child is a raw clone of the caller, which
 * may have had threads (a worker's, the cgroup warmer): glibc's copy of its thread list still
 * names them, none of them exists in the child, and the wait never ends. The kernel's calls
 * change the calling thread only, which is all the child has.
 */
static inline int mr_setresuid(uid_t uid)
{
    return (int)syscall(SYS_setresuid, uid, uid, uid);
}

static inline int mr_setresgid(gid_t gid)
{
    return (int)syscall(SYS_setresgid, gid, gid, gid);
}

static inline int mr_setgroups(size_t n, const gid_t *groups)
{
    return (int)syscall(SYS_setgroups, n, groups);
}

#endif
