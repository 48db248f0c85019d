/*
 * steps.h — every step of the native path, in the order it runs.
 *
 * The child reports a failure as {errno, step, index}; Python turns the step number back into a
 * name with mr_step_name(), so the table lives here once and both sides read it.
 * X(ENUM, "name printed to the user")
 */
#ifndef MINIRUN_STEPS_H
#define MINIRUN_STEPS_H

#define MR_STEPS(X)                                                     \
    X(NONE,            "none")                                          \
    X(OPEN_TREE,       "open_tree")                                     \
    X(IDMAP,           "idmap mount")                                   \
    X(FORK_MONITOR,    "fork monitor")                                  \
    X(JOIN_PIDNS,      "join pid namespace")                            \
    X(CLONE,           "clone")                                         \
    X(JOIN_NS,         "join namespace")                                \
    X(JOIN_CGROUP,     "join cgroup")                                   \
    X(WAIT_GO,         "wait for parent")                               \
    X(USERNS_ROOT,     "become root of the user namespace")             \
    X(SETSID,          "setsid")                                        \
    X(UNSHARE_CGROUP,  "unshare cgroup namespace")                      \
    X(PROPAGATION,     "make / private")                                \
    X(MOVE_MOUNT,      "attach idmapped mount")                         \
    X(ROOTFS,          "mount rootfs")                                  \
    X(OPEN_ROOT,       "open rootfs")                                   \
    X(MKDIR,           "create mount point")                            \
    X(MOUNT,           "mount")                                         \
    X(MKNOD,           "mknod")                                         \
    X(SYMLINK,         "symlink")                                       \
    X(WAIT_HOOKS,      "wait for the createRuntime hooks")              \
    X(PIVOT_ROOT,      "pivot_root")                                    \
    X(CHROOT,          "chroot")                                        \
    X(UMOUNT_OLD,      "detach old root")                               \
    X(SYSCTL,          "write sysctl")                                  \
    X(MASK,            "mask path")                                     \
    X(READONLY_PATH,   "make path read-only")                           \
    X(ROOT_READONLY,   "make rootfs read-only")                         \
    X(LOOPBACK,        "bring up loopback")                             \
    X(HOSTNAME,        "sethostname")                                   \
    X(DOMAINNAME,      "setdomainname")                                 \
    X(RLIMIT,          "setrlimit")                                     \
    X(OOM_SCORE,       "set oom_score_adj")                             \
    X(TTY,             "open terminal")                                 \
    X(STDIO,           "set up stdio")                                  \
    X(CLOSE_FDS,       "close stray fds")                               \
    X(CAPS_BOUNDING,   "drop bounding capabilities")                    \
    X(SETGROUPS,       "setgroups")                                     \
    X(SETGID,          "setgid")                                        \
    X(SETUID,          "setuid")                                        \
    X(CAPS,            "capset")                                        \
    X(AMBIENT,         "raise ambient capability")                      \
    X(NO_NEW_PRIVS,    "set no_new_privs")                              \
    X(CHDIR,           "chdir")                                         \
    X(EXEC_FIFO,       "wait for start")                                \
    X(SECCOMP,         "load seccomp filter")                           \
    X(TRAMPOLINE,      "exec minirun-exec")                             \
    X(EXEC,            "exec")                                          \
    X(SETNS,           "setns")                                         \
    X(FORK,            "fork")

#define MR_STEP_ENUM(name, text) MR_STEP_##name,
enum mr_step { MR_STEPS(MR_STEP_ENUM) MR_STEP__COUNT };
#undef MR_STEP_ENUM

const char *mr_step_name(int step);

#endif
