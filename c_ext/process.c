/*
 * process.c — what the container's process is: stdio, terminal, user, capabilities, seccomp, exec.
 *
 * Shared by the first process (spawn.c) and by `exec` (enter.c). Everything here runs in a child
 * after fork/clone, so it only makes syscalls and writes to the stack.
 *
 * Man pages: capabilities(7), credentials(7), prctl(2), seccomp(2), pty(7), execve(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "exec_path.h"
#include "process.h"
#include "util.h"

int mr_send_msg(int fd, const struct mr_msg *msg, int pass_fd)
{
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n;
    do n = sendmsg(fd, &mh, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    /* A seccomp allow-list may leave sendmsg(2) out (the filter loads before the credentials
     * when no_new_privs is off, so READY and any error report come under it): write(2), which
     * no program can do without, sends the same datagram on the connected socket. Only for a
     * refusal, and only without an fd to pass: a parent that is gone (EPIPE) stays an error. */
    if (n < 0 && pass_fd < 0 && (errno == EPERM || errno == EACCES || errno == ENOSYS))
        do n = write(fd, msg, sizeof(*msg)); while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*msg) ? 0 : -1;
}

/* `minirun trace`: the step stamps (MR_STEP__COUNT of them) and the per-entry stamps of a list
 * (MR_TRACE_ITEMS), with the exec step stamped now. Sent under the seccomp filter, as a failure
 * report would be; best effort: a trace never stops a container. */
void mr_send_trace(int fd, const uint64_t *stamps, const uint64_t *items)
{
    struct mr_msg trace;
    memset(&trace, 0, sizeof(trace));
    trace.type = MR_MSG_TRACE;
    memcpy(trace.stamps, stamps, sizeof(trace.stamps));
    memcpy(trace.items, items, sizeof(trace.items));
    trace.stamps[MR_STEP_EXEC] = mr_now_ns();
    mr_send_msg(fd, &trace, -1);
}

/* (7) A step failed: tell the parent {errno, step, index} and exit like a shell would, 126/127
 * when the program could not be run, 125 for our own failures. */
_Noreturn void mr_report_and_exit(int sync_fd, const struct mr_err *err)
{
    struct mr_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = MR_MSG_ERROR;
    msg.err = *err;
    mr_send_msg(sync_fd, &msg, -1);
    _exit(err->step == MR_STEP_EXEC ? (err->errno_ == ENOENT ? 127 : 126) : 125);
}

/* The container must not inherit our signal setup: CPython ignores SIGPIPE (so `yes | head`
 * would never end), the spawn path blocks every signal, and whoever started us may ignore others.
 * execve keeps both an ignored disposition and the mask, so reset them all to what a freshly
 * booted process has. The raw syscall, because glibc refuses to touch the two real-time signals
 * it reserves for itself (32 and 33), and an inherited "ignore" on those must go too. */
struct kernel_sigaction { void *handler; unsigned long flags; void *restorer; uint64_t mask; };

void mr_reset_signals(void)
{
    struct kernel_sigaction dfl = { 0 };        /* SIG_DFL, no flags, empty mask */
    uint64_t none = 0;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
}

/* Make the planned fds the process's 0, 1 and 2. Python only hands us fds that are either already
 * in place or >= 3, so one dup2 each cannot clobber a later source. */
static int setup_stdio(const int stdio[3], struct mr_err *err)
{
    for (int i = 0; i < 3; i++) {
        if (stdio[i] < 0)
            continue;
        if (stdio[i] != i) {
            if (dup2(stdio[i], i) < 0)
                return mr_fail(err, MR_STEP_STDIO, i, NULL);
        } else if (fcntl(i, F_SETFD, 0) < 0) {
            return mr_fail(err, MR_STEP_STDIO, i, NULL);
        }
    }
    return 0;
}

/* A terminal like runc's: the pty comes from the container's own devpts instance (so `tty` inside
 * says /dev/pts/0), the master goes to the parent over the sync socket, the slave becomes the
 * controlling terminal and stdio of a new session. */
static int open_terminal(int sync_fd, unsigned short rows, unsigned short cols, struct mr_err *err)
{
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return mr_fail(err, MR_STEP_TTY, -1, "/dev/pts/ptmx");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return mr_fail(err, MR_STEP_TTY, -1, "unlockpt");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        return mr_fail(err, MR_STEP_TTY, -1, "open pty peer");
    if (rows && cols) {
        struct winsize ws = { .ws_row = rows, .ws_col = cols };
        ioctl(slave, TIOCSWINSZ, &ws);
    }
    struct mr_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = MR_MSG_TTY;
    if (mr_send_msg(sync_fd, &msg, master) < 0)
        return mr_fail(err, MR_STEP_TTY, -1, "send pty master");
    close(master);
    setsid();
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        return mr_fail(err, MR_STEP_TTY, -1, "TIOCSCTTY");
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0)
            return mr_fail(err, MR_STEP_TTY, i, "dup2");
    if (slave > 2)
        close(slave);
    return 0;
}

/* The bounding set can only shrink, and only while we still hold CAP_SETPCAP: before setuid. */
static int drop_bounding(const struct mr_process *c, struct mr_err *err)
{
    if (!c->set_caps)
        return 0;
    for (int cap = 0; cap <= c->cap_last; cap++)
        if (!(c->cap_bounding & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return mr_fail(err, MR_STEP_CAPS_BOUNDING, cap, NULL);
    return 0;
}

/* Switch user and set the capability sets. PR_SET_KEEPCAPS keeps the permitted set across the
 * setuid away from root; capset then sets exactly what the plan says. */
static int set_ids_and_caps(const struct mr_process *c, struct mr_err *err)
{
    if (c->set_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return mr_fail(err, MR_STEP_CAPS, -1, "PR_SET_KEEPCAPS");
    if (c->n_groups >= 0 && mr_setgroups((size_t)c->n_groups, c->groups) < 0)
        return mr_fail(err, MR_STEP_SETGROUPS, -1, NULL);
    if (mr_setresgid(c->gid) < 0)
        return mr_fail(err, MR_STEP_SETGID, -1, NULL);
    if (mr_setresuid(c->uid) < 0)
        return mr_fail(err, MR_STEP_SETUID, -1, NULL);
    if (!c->set_caps)
        return 0;
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(c->cap_effective >> (32 * i));
        data[i].permitted = (uint32_t)(c->cap_permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(c->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return mr_fail(err, MR_STEP_CAPS, -1, NULL);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* The kernel raises an ambient capability only if it is permitted and inheritable (EPERM
     * otherwise). `runc spec` lists ambient capabilities without inheritable ones and runc
     * skips what cannot be raised; so do we, or such bundles would not run. Nothing is gained
     * by skipping: the capability is simply not ambient. Any other error is real. */
    for (int cap = 0; cap <= c->cap_last; cap++)
        if ((c->cap_ambient & (1ull << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EPERM)
            return mr_fail(err, MR_STEP_AMBIENT, cap, NULL);
    return 0;
}

static int load_seccomp(const void *filter, int len, struct mr_err *err)
{
    if (len <= 0)
        return 0;
    struct sock_fprog prog = { .len = (unsigned short)len, .filter = (struct sock_filter *)filter };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        return mr_fail(err, MR_STEP_SECCOMP, -1, NULL);
    return 0;
}

/* The working directory must be inside the container's root. A cwd like /proc/self/fd/N
 * follows whatever fd N is at that moment — and until execve this process holds copies of the
 * runtime's fds: one for a host directory would put the program's cwd outside the root, where
 * "cat ../../etc/shadow" reads the host (CVE-2024-21626). The kernel's getcwd(2) says so: a
 * directory the root cannot reach comes back as "(unreachable)...", not as an absolute path. */
static int check_cwd_in_root(const char *cwd, struct mr_err *err)
{
    char buf[4096];
    long n = syscall(SYS_getcwd, buf, sizeof(buf));
    if (n > 0 && buf[0] == '/')
        return 0;
    if (n >= 0 || errno == ERANGE || errno == ENOENT) {
        char text[256];
        static const char tail[] = " (outside the container's root)";
        size_t len = cwd ? strnlen(cwd, sizeof(text) - sizeof(tail)) : 0;
        memcpy(text, cwd ? cwd : "", len);
        memcpy(text + len, tail, sizeof(tail));
        errno = ENOENT;
        return mr_fail(err, MR_STEP_CHDIR, -1, text);
    }
    return mr_fail(err, MR_STEP_CHDIR, -1, cwd);
}

/* getdents64(2)'s record; glibc declares none for the raw call. */
struct mr_dirent64 { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; };

/* Mark fds from `from` up close-on-exec, one by one through /proc/self/fd, as runc does: for
 * where close_range(2) is refused. The directory must be procfs — a rootfs without a /proc
 * mount could otherwise offer a /proc/self/fd of its own that lists nothing. */
static int cloexec_through_proc(int from, struct mr_err *err)
{
    mr_autoclose int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return mr_fail(err, MR_STEP_CLOSE_FDS, -1, "/proc/self/fd");
    struct statfs fs;
    if (fstatfs(dir, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) {
        errno = EXDEV;
        return mr_fail(err, MR_STEP_CLOSE_FDS, -1, "/proc/self/fd is not procfs");
    }
    char buf[4096] __attribute__((aligned(8)));
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n; off += ((struct mr_dirent64 *)(buf + off))->reclen) {
            const char *name = ((struct mr_dirent64 *)(buf + off))->name;
            int fd = 0;
            if (name[0] < '0' || name[0] > '9')
                continue;                           /* "." and ".." */
            for (; *name >= '0' && *name <= '9'; name++)
                fd = fd * 10 + (*name - '0');
            /* EBADF: an fd of the listing itself, gone by now */
            if (fd >= from && fd != dir && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF)
                return mr_fail(err, MR_STEP_CLOSE_FDS, fd, NULL);
        }
    }
    return n < 0 ? mr_fail(err, MR_STEP_CLOSE_FDS, -1, "/proc/self/fd") : 0;
}

/* Every fd we did not plan to pass (from 3 + preserve_fds up) becomes close-on-exec: nothing of
 * the runtime's reaches the program. One close_range(2) where the kernel has CLOSE_RANGE_CLOEXEC
 * (5.11) and nothing refuses it; otherwise (ENOSYS, EINVAL on older kernels; EPERM under a
 * filter of whoever started us) fd by fd. */
static int close_stray_fds(const struct mr_process *pr, struct mr_err *err)
{
    int from = 3 + pr->preserve_fds;
    if (syscall(SYS_close_range, from, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL && errno != EPERM)
        return mr_fail(err, MR_STEP_CLOSE_FDS, -1, NULL);
    return cloexec_through_proc(from, err);
}

/* A terminal from the container's devpts, or the planned stdio. */
int mr_process_stdio(const struct mr_process *pr, int sync_fd, struct mr_err *err)
{
    if (pr->terminal)
        return open_terminal(sync_fd, pr->console_rows, pr->console_cols, err);
    return setup_stdio(pr->stdio, err);
}

/* Who the process is, in the order the kernel needs: first every fd we did not plan to pass
 * becomes close-on-exec (nothing of the host leaks in), while no filter of the container's can
 * refuse that yet — an allow-list without close_range(2) is common, and runc's order is the
 * same. Nothing after it opens an fd without O_CLOEXEC (the exec fifo is, and the report fd
 * for minirun-exec is kept on purpose). Then the bounding set shrinks while we still hold
 * CAP_SETPCAP; without no_new_privs a filter needs CAP_SYS_ADMIN, so it loads before the user
 * switch (and its allow-list must then permit the switch; with no_new_privs it loads last,
 * before execve); then uid/gid and the capability sets, no_new_privs, umask, the working
 * directory. */
int mr_process_credentials(const struct mr_process *pr, struct mr_err *err)
{
    struct stat checked, now;
    int early = !pr->no_new_privs && pr->seccomp_filter;
    if (close_stray_fds(pr, err) < 0)
        return -1;
    if (drop_bounding(pr, err) < 0)
        return -1;
    if (early) {
        /* the filter must load before the user switch here, and it may deny getcwd(2) (the
         * OCI validation suite's own profile does): check the cwd while we still can, and
         * below make sure the user's chdir lands on that same directory */
        if (pr->cwd && chdir(pr->cwd) < 0)
            return mr_fail(err, MR_STEP_CHDIR, -1, pr->cwd);
        if (check_cwd_in_root(pr->cwd, err) < 0)
            return -1;
        if (stat(".", &checked) < 0)
            return mr_fail(err, MR_STEP_CHDIR, -1, pr->cwd);
        if (load_seccomp(pr->seccomp_filter, pr->seccomp_len, err) < 0)
            return -1;
    }
    if (set_ids_and_caps(pr, err) < 0)
        return -1;
    if (pr->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return mr_fail(err, MR_STEP_NO_NEW_PRIVS, -1, NULL);
    umask(pr->umask >= 0 ? (mode_t)pr->umask : 022);
    if (pr->cwd && chdir(pr->cwd) < 0)       /* again as the user: its permissions apply */
        return mr_fail(err, MR_STEP_CHDIR, -1, pr->cwd);
    if (early) {
        if (stat(".", &now) < 0)
            return mr_fail(err, MR_STEP_CHDIR, -1, pr->cwd);
        if (now.st_dev != checked.st_dev || now.st_ino != checked.st_ino) {
            errno = ENOENT;
            return mr_fail(err, MR_STEP_CHDIR, -1, pr->cwd);
        }
    } else if (check_cwd_in_root(pr->cwd, err) < 0) {
        return -1;
    }
    return 0;
}

/* With no_new_privs the filter comes as late as possible, right before mr_process_exec (it then
 * only has to allow what remains: execve, execveat, and the report of a failure). Without it
 * the filter was loaded with the credentials. Returns 1 when it loaded a filter here, 0 when
 * there was none to load, -1 with *err filled. */
int mr_process_late_seccomp(const struct mr_process *pr, struct mr_err *err)
{
    if (!pr->no_new_privs || pr->seccomp_len <= 0)
        return 0;
    return load_seccomp(pr->seccomp_filter, pr->seccomp_len, err) < 0 ? -1 : 1;
}

/* The last step: the program — by way of minirun-exec (c_ext/exec.c), a sealed
 * in-memory copy of a tiny static program, when Python gave one (exec_fd): until this execve we
 * are a copy of the runtime, so "/proc/self/exe" names the host's Python, and a program that is
 * a link to it (or a script with "#!/proc/self/exe") would run the host's binary inside the
 * container, where another process could open it for writing (CVE-2019-5736). After the first
 * execve, /proc/self/exe is the sealed copy, which nobody can change. `report_fd` is where
 * minirun-exec reports a program it cannot run. Returns only on failure, with *err filled. */
void mr_process_exec(const struct mr_process *pr, int report_fd, struct mr_err *err)
{
    if (pr->exec_fd < 0) {
        mr_exec_path(pr->path, pr->search_path, pr->argv, pr->envp, err);
        return;
    }
    int argc = 0;
    while (pr->argv[argc])
        argc++;
    char fdbuf[24];
    const char *targv[argc + 5];
    targv[0] = "minirun-exec";
    targv[1] = mr_utoa((unsigned long)report_fd, fdbuf);
    targv[2] = pr->path;
    targv[3] = pr->search_path ? pr->search_path : "";
    for (int i = 0; i <= argc; i++)
        targv[4 + i] = pr->argv[i];
    if (report_fd >= 0 && fcntl(report_fd, F_SETFD, 0) < 0) {
        mr_fail(err, MR_STEP_TRAMPOLINE, -1, NULL);
        return;
    }
    syscall(SYS_execveat, pr->exec_fd, "", targv, pr->envp, AT_EMPTY_PATH);
    if (errno == EPERM || errno == ENOSYS) {
        /* An allow-list may leave execveat(2) out (runc needs only execve): the same sealed
         * file by its /proc/self/fd path. The container's own procfs (no /proc: ENOENT, and
         * the refusal of execveat is what we report). A static program, so the fd being
         * close-on-exec does not matter; the kernel has opened the file by then. */
        int saved = errno;
        char path[40];
        execve(mr_fd_path(pr->exec_fd, path), (char *const *)targv, pr->envp);
        errno = saved;
    }
    mr_fail(err, MR_STEP_TRAMPOLINE, -1, NULL);
    if (report_fd >= 0)
        fcntl(report_fd, F_SETFD, FD_CLOEXEC);
}
