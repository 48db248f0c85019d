/*
 * enter.c — `minirun exec`: run one more process inside a running container.
 *
 * A process cannot move itself into another pid namespace, only its future children, so this is
 * two steps: a forked helper joins the cgroup and the namespaces (setns), then clones the real
 * process with CLONE_PARENT so that it becomes the *caller's* child (and is waited for there) and
 * exits. The real process then sets up stdio, credentials and capabilities like the first one.
 *
 *   caller ── fork ──▶ helper: join cgroup, setns(...) ── clone(CLONE_PARENT) ──▶ process
 *      ▲                      reports the pid on a pipe, exits            (child of the caller)
 *      └────── sync socket: MR_MSG_ERROR, MR_MSG_TTY, or EOF at execve ◀───────────┘
 *
 * With ex->trace, each step is stamped (CLOCK_MONOTONIC) at its end into an array on the helper's
 * stack, which the clone copies; the process sends the array as MR_MSG_TRACE just before execve,
 * as spawn.c does for the first process (`minirun trace exec`, docs/trace.md).
 *
 * Man pages: setns(2), nsenter(1), pid_namespaces(7).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minirun.h"
#include "process.h"
#include "util.h"

#define STAMP(s) (stamps[MR_STEP_##s] = mr_now_ns())

static _Noreturn void enter_process(const struct mr_enter *ex, uint64_t *stamps, uint64_t *items)
{
    struct mr_err err;
    STAMP(CLONE);                          /* the process's first instant */
    memset(&err, 0, sizeof(err));
    mr_reset_signals();
    if (!ex->process.terminal)
        setsid();
    if (mr_process_stdio(&ex->process, ex->sync_fd, &err) == 0) {
        STAMP(STDIO);
        if (mr_process_credentials(&ex->process, &err) == 0) {
            STAMP(CAPS);
            int filtered = mr_process_late_seccomp(&ex->process, &err);
            if (filtered < 0)
                mr_report_and_exit(ex->sync_fd, &err);
            if (filtered)
                STAMP(SECCOMP);
            if (ex->trace)                /* under the filter, as a failure report would be */
                mr_send_trace(ex->sync_fd, stamps, items);
            mr_process_exec(&ex->process, ex->sync_fd, &err);
        }
    }
    mr_report_and_exit(ex->sync_fd, &err);
}

static _Noreturn void helper(const struct mr_enter *ex, int pid_pipe)
{
    struct mr_err err;
    int report;
    uint64_t stamps[MR_STEP__COUNT], items[MR_TRACE_ITEMS];
    memset(stamps, 0, sizeof(stamps));
    memset(items, 0, sizeof(items));
    STAMP(FORK);                           /* the helper's first instant */
    memset(&err, 0, sizeof(err));
    /* Until execve, this process and its clone are copies of the runtime (the host's Python):
     * not dumpable, so the container's processes, which lack CAP_SYS_PTRACE, can open none of
     * their /proc files — not /proc/PID/exe, through which a process inside could write to the
     * host's binary (CVE-2019-5736), nor /proc/PID/fd (CVE-2016-9962). execve resets it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int i = 0; i < ex->n_cgroup_procs_fds; i++)
        if (write(ex->cgroup_procs_fds[i], "0", 1) < 0) {
            mr_fail(&err, MR_STEP_JOIN_CGROUP, i, NULL);
            goto fail;
        }
    STAMP(JOIN_CGROUP);
    for (int i = 0; i < ex->n_ns_fds; i++)
        if (setns(ex->ns_fds[i], 0) < 0) {
            mr_fail(&err, MR_STEP_SETNS, i, NULL);
            goto fail;
        } else if (i < MR_TRACE_ITEMS) {
            items[i] = mr_now_ns();    /* one row per namespace in `trace exec --detail` */
        }
    if (ex->root_dir && (chroot(ex->root_dir) < 0 || chdir("/") < 0)) {
        mr_fail(&err, MR_STEP_SETNS, -1, ex->root_dir);
        goto fail;
    }
    STAMP(SETNS);
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)CLONE_PARENT, NULL, NULL, NULL, 0);
    if (pid == 0)
        enter_process(ex, stamps, items);   /* a copy of our stack: the stamps so far come along */
    if (pid < 0) {
        mr_fail(&err, MR_STEP_FORK, -1, NULL);
        goto fail;
    }
    report = pid;
    if (write(pid_pipe, &report, sizeof(report)) < 0)
        _exit(125);
    _exit(0);
fail:
    report = -1;
    if (write(pid_pipe, &report, sizeof(report)) < 0 || write(pid_pipe, &err, sizeof(err)) < 0)
        _exit(125);
    _exit(125);
}

pid_t mr_enter(const struct mr_enter *ex, struct mr_err *err)
{
    int pipefd[2];
    memset(err, 0, sizeof(*err));
    err->index = -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return mr_fail(err, MR_STEP_FORK, -1, "pipe");
    pid_t h = fork();
    if (h == 0) {
        close(pipefd[0]);
        helper(ex, pipefd[1]);
    }
    close(pipefd[1]);
    if (h < 0) {
        close(pipefd[0]);
        return mr_fail(err, MR_STEP_FORK, -1, NULL);
    }
    int report = -1;
    ssize_t n;
    do n = read(pipefd[0], &report, sizeof(report)); while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(report) && report < 0) {
        if (read(pipefd[0], err, sizeof(*err)) != (ssize_t)sizeof(*err))
            mr_fail(err, MR_STEP_FORK, -1, "helper died");
    } else if (n != (ssize_t)sizeof(report)) {
        errno = EPIPE;
        mr_fail(err, MR_STEP_FORK, -1, "helper died");
        report = -1;
    }
    close(pipefd[0]);
    waitpid(h, NULL, 0);
    return report;
}
