/*
 * spawn.c — start a container: clone() into new namespaces, then execute the plan step by step.
 *
 * The sync points (numbers in comments) are drawn once, in sync.h, and cited here by number:
 * the child joins its cgroup and waits for GO (3), or, when Python has nothing to do before the
 * execve, runs straight through in Python's own memory (3', clone_container); it builds its root
 * and process (6), reports an error (7) and execve()s (9). Namespaces given by path are joined,
 * not made: a pid namespace by the cloner before (2), the others by the child first of all.
 *
 * Man pages: clone(2), namespaces(7), pid_namespaces(7), cgroup_namespaces(7).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_path.h"
#include "fs.h"
#include "minirun.h"
#include "process.h"
#include "util.h"

#define MR_STEP_NAME(name, text) text,
static const char *const step_names[] = { MR_STEPS(MR_STEP_NAME) };
#undef MR_STEP_NAME

const char *mr_step_name(int step)
{
    if (step < 0 || step >= MR_STEP__COUNT)
        return "unknown step";
    return step_names[step];
}

/* fork-like clone: no new stack, the child continues on a copy of ours. */
static pid_t clone_fork(int flags)
{
    return (pid_t)syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), NULL, NULL, NULL, 0);
}

/* Namespaces that exist already (linux.namespaces[].path: another container's, or one made with
 * `ip netns add`): the child enters them before anything else, so every later step (the cgroup
 * write, the mounts, sethostname, the sysctls) acts inside them. A pid namespace is not joined
 * here: setns(CLONE_NEWPID) only decides where the caller's next *child* goes, so the process
 * that clones joins it (clone_container). */
static int join_namespaces(const struct mr_plan *p, struct mr_err *err)
{
    for (int i = 0; i < p->n_join_ns; i++)
        if (setns(p->join_ns_fds[i], p->join_ns_types[i]) < 0)
            return mr_fail(err, MR_STEP_JOIN_NS, i, NULL);
    return 0;
}

static int join_cgroups(const int *fds, int n, struct mr_err *err)
{
    for (int i = 0; i < n; i++) {
        ssize_t w;
        do w = write(fds[i], "0", 1); while (w < 0 && errno == EINTR);
        if (w < 0)
            return mr_fail(err, MR_STEP_JOIN_CGROUP, i, NULL);
    }
    return 0;
}

/* (3) Block until the parent has finished its part (uid maps, network) and says GO; (6b) the
 * same after MR_MSG_HOOKS. A parent that gives up closes its end: EOF, and we fail here. */
static int wait_go(int sync_fd, int step, struct mr_err *err)
{
    struct mr_msg msg;
    ssize_t n;
    do n = recv(sync_fd, &msg, sizeof(msg), 0); while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(msg) || msg.type != MR_MSG_GO) {
        if (n >= 0)
            errno = EPIPE;
        return mr_fail(err, step, -1, NULL);
    }
    return 0;
}

/* (6b) The OCI createRuntime, prestart and createContainer hooks run between the mounts and
 * pivot_root (runtime-spec config.md): tell the parent we are there, and wait until they ran. */
static int wait_hooks(int sync_fd, struct mr_err *err)
{
    struct mr_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = MR_MSG_HOOKS;
    if (mr_send_msg(sync_fd, &msg, -1) < 0)
        return mr_fail(err, MR_STEP_WAIT_HOOKS, -1, NULL);
    return wait_go(sync_fd, MR_STEP_WAIT_HOOKS, err);
}

static int set_rlimits(const struct mr_plan *p, struct mr_err *err)
{
    for (int i = 0; i < p->n_rlimits; i++) {
        struct rlimit64 rl = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };
        if (setrlimit64((__rlimit_resource_t)p->rlimits[i].resource, &rl) < 0)
            return mr_fail(err, MR_STEP_RLIMIT, i, NULL);
    }
    return 0;
}

static int set_oom_score(const struct mr_plan *p, struct mr_err *err)
{
    if (!p->oom_score_adj)
        return 0;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, p->oom_score_adj, strlen(p->oom_score_adj)) < 0)
        return mr_fail(err, MR_STEP_OOM_SCORE, -1, p->oom_score_adj);
    close(fd);
    return 0;
}

/* (4) has written our uid and gid maps. We still carry the host's ids (kuid 0, which the new
 * namespace does not map), so files we made would fail with EOVERFLOW: become the namespace's
 * root — the host uid the map gives it — and drop the host's supplementary groups. Our
 * capabilities, full in the new namespace, stay: the old ids were not its root. */
static int become_userns_root(const struct mr_plan *p, struct mr_err *err)
{
    if (mr_setresgid(0) < 0 || (!p->setgroups_denied && mr_setgroups(0, NULL) < 0))
        return mr_fail(err, MR_STEP_USERNS_ROOT, -1, "gid 0");
    if (mr_setresuid(0) < 0)
        return mr_fail(err, MR_STEP_USERNS_ROOT, -1, "uid 0");
    return 0;
}

/* --sysctl: namespaced kernel settings (net.*, kernel.msg*, fs.mqueue.*) are per namespace, so
 * they are written from inside, through the container's own /proc, while /proc/sys is still
 * writable (it turns read-only a few steps later). Python checked the names and built the paths. */
static int write_sysctls(const struct mr_plan *p, struct mr_err *err)
{
    for (int i = 0; i < p->n_sysctls; i++) {
        mr_autoclose int fd = open(p->sysctl_paths[i], O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return mr_fail(err, MR_STEP_SYSCTL, i, NULL);
        size_t len = strlen(p->sysctl_values[i]);
        ssize_t w = write(fd, p->sysctl_values[i], len);
        if (w != (ssize_t)len) {
            if (w >= 0)
                errno = EIO;                /* a short write: no errno of its own */
            return mr_fail(err, MR_STEP_SYSCTL, i, NULL);
        }
    }
    return 0;
}

/* (8) OCI create/start: block on exec.fifo until `start` opens it for reading. The fifo is
 * close-on-exec, so a successful execve gives `start` EOF; a failure writes the error record. */
static int wait_exec_fifo(int fifo_path_fd, int *fifo, struct mr_err *err)
{
    char path[40];
    *fifo = open(mr_fd_path(fifo_path_fd, path), O_WRONLY | O_CLOEXEC);
    if (*fifo < 0)
        return mr_fail(err, MR_STEP_EXEC_FIFO, -1, NULL);
    close(fifo_path_fd);
    return 0;
}

/* A new network namespace has only "lo", and it is down; Docker's `--network none` has it up.
 * Two ioctls on any socket do it (netdevice(7)): no netlink needed for this one flag. */
static int loopback_up(struct mr_err *err)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mr_fail(err, MR_STEP_LOOPBACK, -1, "socket");
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return r < 0 ? mr_fail(err, MR_STEP_LOOPBACK, -1, "lo") : 0;
}

#define STAMP(s) (stamps[MR_STEP_##s] = mr_now_ns())

/* (6) Everything between GO and execve, in the order the kernel needs it (with share_memory
 * there is no GO: clone_container explains). Returns only on error. */
static void child_main(const struct mr_plan *p, struct mr_err *err, uint64_t *stamps, uint64_t *items)
{
    int fifo = -1;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);   /* until execve (or READY): die with our parent */
    if (p->n_join_ns) {            /* stamped only when it ran: the trace shows real steps */
        if (join_namespaces(p, err) < 0) return;
        STAMP(JOIN_NS);
    }
    if (join_cgroups(p->cgroup_procs_fds, p->n_cgroup_procs_fds, err) < 0) return;
    STAMP(JOIN_CGROUP);
    if (!p->share_memory) {
        if (wait_go(p->sync_fd, MR_STEP_WAIT_GO, err) < 0) return;
        STAMP(WAIT_GO);
    }
    if (p->clone_flags & CLONE_NEWUSER) {
        /* Dumpable until now: a non-root parent (rootless) writes our maps through /proc/PID,
         * which a non-dumpable process would hand to the host's root (container() explains). */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (become_userns_root(p, err) < 0) return;
    }
    if (!p->process.terminal && setsid() < 0) { mr_fail(err, MR_STEP_SETSID, -1, NULL); return; }
    if (p->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0) {
        mr_fail(err, MR_STEP_UNSHARE_CGROUP, -1, NULL);
        return;
    }
    umask(0);
    if (mr_setup_rootfs(p, err) < 0) return;
    STAMP(ROOTFS);
    int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) { mr_fail(err, MR_STEP_OPEN_ROOT, -1, p->rootfs); return; }
    if (mr_run_fsops(rootfd, p->fsops, p->n_fsops, p->trace ? items : NULL, err) < 0) return;
    STAMP(MOUNT);
    if (p->hooks_sync) {
        if (wait_hooks(p->sync_fd, err) < 0) return;
        STAMP(WAIT_HOOKS);
    }
    if (p->host_mount_ns) {
        /* pivot_root would give every process on the host the new root: chroot (runc does the
         * same without a mount namespace; the caller asked for no mount isolation) */
        if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0) {
            mr_fail(err, MR_STEP_CHROOT, -1, p->rootfs);
            return;
        }
    } else if (mr_pivot_root(rootfd, err) < 0) {
        return;
    }
    close(rootfd);
    /* shared or unbindable cannot be had before: pivot_root refuses a shared root or parent,
     * and binding the rootfs fails under an unbindable "/" (so the root was built private) */
    if (p->root_propagation_after && !p->host_mount_ns &&
        mount(NULL, "/", NULL, p->root_propagation_after, NULL) < 0) {
        mr_fail(err, MR_STEP_PROPAGATION, -1, "/");
        return;
    }
    STAMP(PIVOT_ROOT);
    if (write_sysctls(p, err) < 0) return;
    if (mr_mask_paths(p->masked_paths, p->n_masked_paths, err) < 0) return;
    if (mr_readonly_paths(p->readonly_paths, p->n_readonly_paths, err) < 0) return;
    STAMP(READONLY_PATH);
    if (p->rootfs_readonly &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
        mr_fail(err, MR_STEP_ROOT_READONLY, -1, "/");
        return;
    }
    if (p->loopback_up && loopback_up(err) < 0) return;
    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0) {
        mr_fail(err, MR_STEP_HOSTNAME, -1, p->hostname);
        return;
    }
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0) {
        mr_fail(err, MR_STEP_DOMAINNAME, -1, p->domainname);
        return;
    }
    if (set_rlimits(p, err) < 0 || set_oom_score(p, err) < 0) return;
    if (mr_process_stdio(&p->process, p->sync_fd, err) < 0) return;
    STAMP(STDIO);
    if (mr_process_credentials(&p->process, err) < 0) return;
    STAMP(CAPS);
    if (p->exec_fifo_fd >= 0) {
        /* `create` fails now, not `start`, when there is nothing to exec (runc does the same) */
        if (mr_lookup_exec(p->process.path, p->process.search_path, err) < 0) return;
        struct mr_msg ready;
        memset(&ready, 0, sizeof(ready));
        ready.type = MR_MSG_READY;
        /* `create` (our parent when there is no monitor) exits once it reads READY; we wait
         * for `start` under the caller's subreaper, as runc's container does. So the parent-
         * death signal goes first: cleared after READY, a quick parent would kill us. */
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        mr_send_msg(p->sync_fd, &ready, -1);
        close(p->sync_fd);
        if (wait_exec_fifo(p->exec_fifo_fd, &fifo, err) < 0) return;
        STAMP(EXEC_FIFO);
    }
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    int filtered = mr_process_late_seccomp(&p->process, err);
    if (filtered > 0)
        STAMP(SECCOMP);
    if (filtered >= 0) {
        if (p->trace)                /* under the filter, as a failure report would be */
            mr_send_trace(p->sync_fd, stamps, items);
        mr_process_exec(&p->process, fifo >= 0 ? fifo : p->sync_fd, err);
    }
    if (fifo >= 0) {
        /* The parent that could read the socket is gone; `start` reads the fifo instead. */
        struct mr_msg msg;
        memset(&msg, 0, sizeof(msg));
        msg.type = MR_MSG_ERROR;
        msg.err = *err;
        ssize_t w = write(fifo, &msg, sizeof(msg));
        (void)w;
    }
}

/* The container process: run the plan; on failure report {errno, step, index} and exit. */
static _Noreturn void container(const struct mr_plan *p, uint64_t clone_stamp)
{
    struct mr_err err;
    uint64_t stamps[MR_STEP__COUNT];
    uint64_t items[MR_TRACE_ITEMS];
    memset(&err, 0, sizeof(err));
    memset(stamps, 0, sizeof(stamps));
    memset(items, 0, sizeof(items));
    stamps[MR_STEP_CLONE] = clone_stamp;
    /* a copy of the runtime until execve (see enter.c), or with share_memory the runtime's own
     * memory, whose flag this is until mr_spawn puts it back: no process of a namespace we
     * join may ptrace us or open our /proc/PID/mem. In a new user namespace only after GO
     * (child_main): nothing of the container runs before it. */
    if (!(p->clone_flags & CLONE_NEWUSER))
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (p->parent_sync_fd >= 0)
        close(p->parent_sync_fd);
    mr_reset_signals();
    child_main(p, &err, stamps, items);
    mr_report_and_exit(p->sync_fd, &err);
}

/* plan->share_memory is only for a child that never waits for its parent: its parent sleeps
 * until the child's execve, so anything that waits for the caller (GO for uid maps or hooks,
 * the exec fifo) would never end; and a user namespace cannot be entered by a process that
 * shares its memory with another (unshare(2), setns(2)). Python never asks for it then. */
static int can_share_memory(const struct mr_plan *p)
{
    if ((p->clone_flags & CLONE_NEWUSER) || p->hooks_sync || p->exec_fifo_fd >= 0)
        return 0;
    for (int i = 0; i < p->n_join_ns; i++)
        if (p->join_ns_types[i] == CLONE_NEWUSER)
            return 0;
    return 1;
}

static int container_entry(void *arg)
{
    container(arg, mr_now_ns());
}

/*
 * (2) clone() the container, in the pid namespace the plan names if it names one. That one is
 * joined by us, the cloner, since setns(CLONE_NEWPID) moves only our future children
 * (pid_namespaces(7)); our own pid namespace is put back for the children we make afterwards.
 *
 * (3') With plan->share_memory (and `stack`, the top of a stack of its own) the container is
 * cloned the way posix_spawn clones: CLONE_VM | CLONE_VFORK, so it runs in the caller's memory
 * rather than a copy, and we sleep until its execve (or exit). No page tables are copied, and
 * the caller's pages are not made copy-on-write for the milliseconds until the execve — each
 * page the runtime then wrote would be copied first (a fault per page). It is safe for the
 * same reasons as posix_spawn: the child calls no libc function that keeps state (no malloc,
 * no stdio; the ids change by raw system calls, process.c), writes only its own stack, and the
 * caller sleeps meanwhile. The runtime's other threads may run, and touch nothing of ours. As
 * the runtime cannot say GO before it is awake again, the child does not wait for GO at all.
 *
 * Returns the pid (to the parent; the child never returns) or -1 with err set.
 */
static pid_t clone_container(const struct mr_plan *p, void *stack, struct mr_err *err)
{
    mr_autoclose int own = -1;
    if (p->join_pid_fd >= 0) {
        own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own < 0 || setns(p->join_pid_fd, CLONE_NEWPID) < 0)
            return mr_fail(err, MR_STEP_JOIN_PIDNS, -1, NULL);
    }
    pid_t pid;
    if (p->share_memory)
        pid = clone(container_entry, stack, p->clone_flags | CLONE_VM | CLONE_VFORK | SIGCHLD,
                    (void *)p);
    else if ((pid = clone_fork(p->clone_flags)) == 0)
        container(p, mr_now_ns());
    int saved = errno;
    if (own >= 0) {
        if (setns(own, CLONE_NEWPID) < 0 && pid > 0) {
            /* cannot happen (our own namespace is always allowed); never leave it changed */
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return mr_fail(err, MR_STEP_JOIN_PIDNS, -1, "back to our own");
        }
    }
    errno = saved;
    return pid < 0 ? mr_fail(err, MR_STEP_CLONE, -1, NULL) : pid;
}

static int keep_fd(int fd)
{
    return fd < 0 ? 0 : fcntl(fd, F_SETFD, 0);
}

/*
 * (2) The monitor: a child of the caller that clones the container, tells the caller the pid over
 * a pipe and execs the small native monitor program, which then is the container's parent: it
 * waits, records the exit status and copies the logs, so no Python process stays per container.
 *
 * It is started like posix_spawn starts a program: clone(CLONE_VM | CLONE_VFORK) on a stack of
 * its own, so the caller's memory is shared rather than copied (a Python process maps tens of MB:
 * copying its page tables once more per container is measurable) and the caller sleeps until the
 * execv. Every signal stays blocked meanwhile: no handler of the caller's may run on shared memory.
 * The monitor program unblocks them; the container resets them (mr_reset_signals).
 */
struct monitor_args { const struct mr_plan *plan; int pid_pipe; void *container_stack; };
#define MONITOR_STACK (128 * 1024)
#define CONTAINER_STACK (256 * 1024)   /* child_main's buffers (paths, messages) and calls */

static _Noreturn void monitor(const struct mr_plan *p, int pid_pipe, void *container_stack);

static int monitor_entry(void *arg)
{
    struct monitor_args *a = arg;
    monitor(a->plan, a->pid_pipe, a->container_stack);
}

static _Noreturn void monitor(const struct mr_plan *p, int pid_pipe, void *container_stack)
{
    struct mr_err err;
    memset(&err, 0, sizeof(err));
    pid_t pid = clone_container(p, container_stack, &err);
    int report[2] = { pid < 0 ? -err.errno_ : pid, err.step };
    ssize_t w = write(pid_pipe, report, sizeof(report));
    (void)w;
    if (pid < 0)
        _exit(125);
    close(pid_pipe);
    close(p->sync_fd);
    for (int sig = 1; sig < NSIG; sig++)     /* the caller's handlers are not ours */
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    setsid();
    /* The monitor must not hold the caller's stdio: `id=$(minirun run -d ...)` would wait for
     * the container to exit before the pipe closed. The container has its own copies. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; null >= 0 && i < 3; i++)
        dup2(null, i);
    if (keep_fd(p->monitor_keep_fds[0]) < 0 || keep_fd(p->monitor_keep_fds[1]) < 0)
        _exit(125);
    execv(p->monitor_path, p->monitor_argv);
    _exit(125);
}

/* (3') The shared-memory container's stack: our memory, so it is ours to unmap once the child
 * is gone from it (it has exec'd or exited: CLONE_VFORK). A guard page below catches overflow. */
struct shared_stack { void *base; int dumpable; };

/* One shared-memory spawn at a time per process. The dumpable flag the child clears is the
 * memory's, so it is ours too while the child runs: a second thread's spawn meanwhile would
 * save "not dumpable" as ours and put that back last, leaving the runtime non-dumpable (seen
 * with four threads starting containers). Each spawn is a few ms; fork-like ones need no lock. */
static pthread_mutex_t shared_spawn_lock = PTHREAD_MUTEX_INITIALIZER;

static void *shared_stack_open(struct shared_stack *s)
{
    /* The container makes itself non-dumpable (container()): a flag of the memory it shares
     * with us. Ours is put back once it has left (shared_stack_close). */
    s->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    s->base = mmap(NULL, CONTAINER_STACK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (s->base == MAP_FAILED || mprotect(s->base, 4096, PROT_NONE) < 0)
        return NULL;
    return (char *)s->base + CONTAINER_STACK;
}

static void shared_stack_close(struct shared_stack *s)
{
    if (s->base && s->base != MAP_FAILED) {
        munmap(s->base, CONTAINER_STACK);
        prctl(PR_SET_DUMPABLE, s->dumpable, 0, 0, 0);
    }
}

static pid_t spawn(const struct mr_plan *p, void *container_stack, pid_t *monitor_pid,
                   struct mr_err *err);

pid_t mr_spawn(const struct mr_plan *p, pid_t *monitor_pid, struct mr_err *err)
{
    memset(err, 0, sizeof(*err));
    err->index = -1;
    *monitor_pid = -1;
    if (!p->share_memory)
        return spawn(p, NULL, monitor_pid, err);
    if (!can_share_memory(p)) {
        errno = EINVAL;
        return mr_fail(err, MR_STEP_CLONE, -1, "shared memory with a child that waits");
    }
    struct shared_stack stack = { 0 };
    pthread_mutex_lock(&shared_spawn_lock);
    void *top = shared_stack_open(&stack);
    pid_t pid = top ? spawn(p, top, monitor_pid, err)
                    : mr_fail(err, MR_STEP_CLONE, -1, "container stack");
    int saved = errno;
    shared_stack_close(&stack);
    pthread_mutex_unlock(&shared_spawn_lock);
    errno = saved;
    return pid;
}

static pid_t spawn(const struct mr_plan *p, void *container_stack, pid_t *monitor_pid,
                   struct mr_err *err)
{
    if (!p->monitor_path)
        return clone_container(p, container_stack, err);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return mr_fail(err, MR_STEP_FORK_MONITOR, -1, "pipe");
    /* The monitor runs on this stack until it execs; we are suspended that long (CLONE_VFORK).
     * The container's copy of memory starts on it too, hence room for child_main's buffers. */
    char stack[MONITOR_STACK] __attribute__((aligned(16)));
    struct monitor_args args = { .plan = p, .pid_pipe = pipefd[1], .container_stack = container_stack };
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t m = clone(monitor_entry, stack + MONITOR_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    if (m < 0) {
        close(pipefd[0]);
        return mr_fail(err, MR_STEP_FORK_MONITOR, -1, NULL);
    }
    int report[2] = { 0, MR_STEP_CLONE };     /* pid or -errno, and the step that failed */
    ssize_t n;
    do n = read(pipefd[0], report, sizeof(report)); while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n != (ssize_t)sizeof(report) || report[0] < 0) {
        waitpid(m, NULL, 0);
        errno = n == (ssize_t)sizeof(report) ? -report[0] : EPIPE;
        return mr_fail(err, n == (ssize_t)sizeof(report) ? report[1] : MR_STEP_CLONE, -1, NULL);
    }
    *monitor_pid = m;
    return report[0];
}
