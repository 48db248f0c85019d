/*
 * minirun.h — the native boundary.
 *
 * Python decides everything and writes it down as a flat struct mr_plan; the C code only executes
 * it between clone() and execve(). Nothing in the plan is allocated by C, and the child never calls
 * malloc, stdio or Python: after clone() only async-signal-safe syscalls run.
 */
#ifndef MINIRUN_H
#define MINIRUN_H

#include <stdint.h>
#include <sys/types.h>
#include "steps.h"
#include "sync.h"

/* One filesystem operation inside the new root, run in order before pivot_root. */
enum mr_fsop_kind { MR_OP_MOUNT = 0, MR_OP_MKNOD = 1, MR_OP_SYMLINK = 2, MR_OP_MKDIR = 3,
                   MR_OP_MOVE_MOUNT = 4 };

struct mr_fsop {
    int kind;
    const char *source;         /* mount source; for a symlink, where it points */
    const char *target;         /* absolute path inside the container */
    const char *fstype;         /* NULL for a bind mount */
    const char *data;           /* mount options the filesystem parses, or NULL */
    unsigned long flags;        /* MS_* (MS_BIND, MS_REC, MS_RDONLY, MS_NOSUID, ...) */
    unsigned long propagation;  /* MS_PRIVATE, MS_SLAVE, MS_SHARED or MS_UNBINDABLE (| MS_REC) */
    unsigned int mode;          /* mknod and mkdir */
    unsigned int major, minor;  /* mknod */
    unsigned int uid, gid;      /* mknod: the node's owner (the host device's, for --device) */
    int target_is_file;         /* the mount point is a file (bind of a file), not a directory */
    int fd;                     /* MR_OP_MOVE_MOUNT: a detached mount (mr_idmap_tree) to attach */
};

struct mr_rlimit { int resource; uint64_t soft, hard; };

/* The process half, shared by the first process (mr_plan) and `exec` (mr_enter): who it runs as,
 * with which capabilities and filter, where, what, and with which stdio. */
struct mr_process {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int n_groups;                 /* -1: leave supplementary groups alone */
    int umask;                    /* -1: 0022 */
    int set_caps;                 /* 0: keep the caller's capabilities (tests only) */
    int cap_last;                 /* /proc/sys/kernel/cap_last_cap */
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int no_new_privs;
    const void *seccomp_filter;   /* struct sock_filter[], built by Python with libseccomp */
    int seccomp_len;              /* instructions; 0: no filter */
    const char *cwd;
    const char *path;             /* the program; without a '/', looked up in search_path */
    const char *search_path;      /* the container's PATH, searched inside the container */
    char *const *argv;
    char *const *envp;
    int stdio[3];                 /* fds to become 0, 1, 2; a value equal to its index keeps it */
    int terminal;                 /* open a pty in the container's devpts, send the master */
    unsigned short console_rows, console_cols;
    int preserve_fds;             /* keep fds 3 .. 3+preserve_fds-1 open across execve */
    int exec_fd;                  /* sealed memfd of minirun-exec, which execs the program; -1:
                                     execve directly (see mr_process_exec: CVE-2019-5736) */
};

struct mr_plan {
    /* namespaces and the monitor */
    int clone_flags;              /* CLONE_NEW* created at clone() */
    int unshare_cgroupns;         /* CLONE_NEWCGROUP after joining the cgroup, so it is the root */
    const int *join_ns_fds;       /* namespaces that exist (linux.namespaces[].path), opened and */
    const int *join_ns_types;     /* type-checked by Python: the child setns()es into each first */
    int n_join_ns;
    int join_pid_fd;              /* a pid namespace to join, or -1: the cloner joins it (spawn.c) */
    const char *monitor_path;     /* NULL: the caller is the parent; else fork+exec this monitor */
    char *const *monitor_argv;
    int monitor_keep_fds[2];      /* fds the monitor reads (the container's log pipes), or -1 */
    const int *cgroup_procs_fds;  /* opened cgroup.procs files: the child writes "0" to each */
    int n_cgroup_procs_fds;

    /* the root filesystem */
    const char *rootfs;           /* host path of the container's root mount point */
    const char *rootfs_fstype;    /* "overlay", or NULL to bind-mount rootfs onto itself */
    const char *rootfs_data;      /* overlay's lowerdir=...,upperdir=...,workdir=... */
    const int *idmap_fds;         /* detached idmapped mounts of the layers (mr_idmap_tree), made */
    const char *const *idmap_targets;  /* before clone; attached on these host paths, in our */
    int n_idmap;                  /* own mount namespace, before the overlay is mounted */
    unsigned long root_propagation;  /* applied to "/" first; MS_REC|MS_PRIVATE by default */
    unsigned long root_propagation_after;  /* linux.rootfsPropagation, applied to the new "/"
                                              after pivot_root; 0 = none given */
    int host_mount_ns;            /* no mount namespace (OCI): the mounts are made on the host
                                     under rootfs, "/" is left alone, chroot instead of pivot_root */
    int rootfs_readonly;
    const struct mr_fsop *fsops;
    int n_fsops;
    const char *const *masked_paths;
    int n_masked_paths;
    const char *const *readonly_paths;
    int n_readonly_paths;
    const char *const *sysctl_paths;   /* "/proc/sys/net/ipv4/ip_forward", written after pivot_root, */
    const char *const *sysctl_values;  /* before /proc/sys turns read-only; namespaced ones only */
    int n_sysctls;

    /* the process */
    int loopback_up;              /* a new network namespace starts with "lo" down: bring it up */
    const char *hostname;         /* NULL: keep */
    const char *domainname;
    const struct mr_rlimit *rlimits;
    int n_rlimits;
    const char *oom_score_adj;
    struct mr_process process;

    /* the conversation with the parent */
    int sync_fd;                  /* the child's end of the socketpair */
    int parent_sync_fd;           /* the parent's end, which a fork-like clone copies: closed
                                   * first, so the parent's death reads as EOF in wait_go */
    int exec_fifo_fd;             /* O_PATH fd of exec.fifo: block until `start`; -1: exec now */
    int setgroups_denied;         /* rootless with a one-id map: "deny" is in /proc/PID/setgroups,
                                   * so setgroups(2) fails; the host groups stay (unmapped) */
    int trace;                    /* send MR_MSG_TRACE with step timestamps before execve */
    int hooks_sync;               /* 6b: stop before pivot_root until the parent's hooks ran */
    int share_memory;             /* the parent has nothing at all to do before execve (no maps,
                                   * network, hooks or exec fifo): no GO; the container is cloned
                                   * as posix_spawn clones, sharing our memory while the monitor
                                   * sleeps until its execve (spawn.c, clone_container) */
};

/* Start a container. Returns the container's pid (in the caller's pid namespace) or -1 with *err
 * filled. With a monitor, *monitor_pid is the monitor's pid and the container is its child. */
pid_t mr_spawn(const struct mr_plan *plan, pid_t *monitor_pid, struct mr_err *err);

/* An idmapped copy of the mount tree at `path` (mount_setattr(2), MOUNT_ATTR_IDMAP): files owned
 * by k on disk appear owned by the id that userns_fd's map gives k. Detached (open_tree(2) with
 * OPEN_TREE_CLONE, close-on-exec) until a container's child attaches it with move_mount(2).
 * Returns the fd, or -1 with err = {errno, OPEN_TREE or IDMAP, index}. Called by the parent, which
 * has CAP_SYS_ADMIN over the filesystem; the child, in its new user namespace, has not. */
int mr_idmap_tree(const char *path, int userns_fd, int recursive, int index, struct mr_err *err);

/* The cgroup-lock warmer (warm.c; runtime/cgroup_warm.py says why). Times are CLOCK_MONOTONIC ns.
 * mr_warm_start: a thread writes "0" into `procs` (the caller's own group's cgroup.procs) every
 * period_ns until until_ns; if one already runs, its deadline only moves later (and procs may be
 * "": -ESRCH if none runs). 0 or -errno.
 * mr_warm_set_deadline: move a running thread's deadline, earlier too (0 = stop at its next look).
 * mr_warm_status: whether a thread runs, its deadline and when its last write returned.
 * mr_warm_write_now: one such write in the caller's thread, to the last procs started with. */
int mr_warm_start(const char *procs, long long until_ns, long period_ns);
void mr_warm_set_deadline(long long until_ns);
int mr_warm_status(long long *until_ns, long long *last_write_ns);
int mr_warm_write_now(void);

/* exec: join the namespaces of a running container and run a process there. */
struct mr_enter {
    const int *ns_fds;            /* /proc/PID/ns/... opened by Python, user namespace first */
    int n_ns_fds;
    const int *cgroup_procs_fds;
    int n_cgroup_procs_fds;
    const char *root_dir;         /* chroot here after setns (NULL: the namespace's root) */
    struct mr_process process;
    int sync_fd;
    int trace;                    /* send MR_MSG_TRACE with step timestamps before execve */
};

/* Returns the pid of the process running in the container (a child of the caller) or -1. */
pid_t mr_enter(const struct mr_enter *ex, struct mr_err *err);

#endif
