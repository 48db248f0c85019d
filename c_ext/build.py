"""cffi builder for minirun._native: the C hot path (c_ext/*.c) as a Python extension.

API mode: the compiler checks these declarations against c_ext/minirun.h, and `...` lets it fill
in struct layouts and constant values, so the two cannot drift apart silently.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
# setuptools insists on paths relative to setup.py, which sits one level up
SOURCES = [f"c_ext/{name}" for name in ("spawn.c", "fs.c", "process.c", "enter.c", "warm.c")]

CDEF = """
#define MR_STEP__COUNT ...
#define MR_STEP_EXEC ...
#define MR_OP_MOUNT ...
#define MR_OP_MKNOD ...
#define MR_OP_SYMLINK ...
#define MR_OP_MKDIR ...
#define MR_OP_MOVE_MOUNT ...
#define MR_MSG_GO ...
#define MR_MSG_READY ...
#define MR_MSG_ERROR ...
#define MR_MSG_TTY ...
#define MR_MSG_TRACE ...
#define MR_MSG_HOOKS ...
#define RLIMIT_CPU ...
#define RLIMIT_FSIZE ...
#define RLIMIT_DATA ...
#define RLIMIT_STACK ...
#define RLIMIT_CORE ...
#define RLIMIT_RSS ...
#define RLIMIT_NPROC ...
#define RLIMIT_NOFILE ...
#define RLIMIT_MEMLOCK ...
#define RLIMIT_AS ...
#define RLIMIT_LOCKS ...
#define RLIMIT_SIGPENDING ...
#define RLIMIT_MSGQUEUE ...
#define RLIMIT_NICE ...
#define RLIMIT_RTPRIO ...
#define RLIMIT_RTTIME ...

struct mr_err { int errno_; int step; int index; char text[256]; ...; };
struct mr_msg { int type; struct mr_err err; uint64_t stamps[...]; uint64_t items[...]; ...; };

struct mr_fsop {
    int kind; const char *source; const char *target; const char *fstype; const char *data;
    unsigned long flags; unsigned long propagation; unsigned int mode;
    unsigned int major; unsigned int minor; unsigned int uid; unsigned int gid;
    int target_is_file; int fd; ...;
};
struct mr_rlimit { int resource; uint64_t soft; uint64_t hard; ...; };

struct mr_process {
    uint32_t uid; uint32_t gid; const uint32_t *groups; int n_groups; int umask;
    int set_caps; int cap_last;
    uint64_t cap_bounding; uint64_t cap_effective; uint64_t cap_permitted;
    uint64_t cap_inheritable; uint64_t cap_ambient;
    int no_new_privs; const void *seccomp_filter; int seccomp_len;
    const char *cwd; const char *path; const char *search_path;
    char *const *argv; char *const *envp;
    int stdio[3]; int terminal; unsigned short console_rows; unsigned short console_cols;
    int preserve_fds; int exec_fd;
    ...;
};

struct mr_plan {
    int clone_flags; int unshare_cgroupns;
    const int *join_ns_fds; const int *join_ns_types; int n_join_ns; int join_pid_fd;
    const char *monitor_path; char *const *monitor_argv; int monitor_keep_fds[2];
    const int *cgroup_procs_fds; int n_cgroup_procs_fds;
    const char *rootfs; const char *rootfs_fstype; const char *rootfs_data;
    const int *idmap_fds; const char *const *idmap_targets; int n_idmap;
    unsigned long root_propagation; unsigned long root_propagation_after; int host_mount_ns; int rootfs_readonly;
    const struct mr_fsop *fsops; int n_fsops;
    const char *const *masked_paths; int n_masked_paths;
    const char *const *readonly_paths; int n_readonly_paths;
    const char *const *sysctl_paths; const char *const *sysctl_values; int n_sysctls;
    int loopback_up; const char *hostname; const char *domainname;
    const struct mr_rlimit *rlimits; int n_rlimits;
    const char *oom_score_adj;
    struct mr_process process;
    int sync_fd; int parent_sync_fd; int exec_fifo_fd; int trace; int setgroups_denied; int hooks_sync;
    int share_memory;
    ...;
};

struct mr_enter {
    const int *ns_fds; int n_ns_fds;
    const int *cgroup_procs_fds; int n_cgroup_procs_fds;
    const char *root_dir;
    struct mr_process process;
    int sync_fd; int trace;
    ...;
};

const char *mr_step_name(int step);
int mr_spawn(const struct mr_plan *plan, int *monitor_pid, struct mr_err *err);
int mr_enter(const struct mr_enter *ex, struct mr_err *err);
int mr_idmap_tree(const char *path, int userns_fd, int recursive, int index, struct mr_err *err);
int mr_warm_start(const char *procs, long long until_ns, long period_ns);
void mr_warm_set_deadline(long long until_ns);
int mr_warm_status(long long *until_ns, long long *last_write_ns);
int mr_warm_write_now(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "minirun._native",
    '#include <sys/resource.h>\n#include "minirun.h"',      # resource.h: the RLIMIT_* numbers
    sources=SOURCES,
    include_dirs=["c_ext"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
)

# Standalone programs built beside the extension (see setup.py): static, so that minirun-init
# runs in images without a libc and the monitor maps as little as possible.
PROGRAMS = {"minirun-monitor": "monitor.c", "minirun-init": "init.c", "minirun-exec": "exec.c"}

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
