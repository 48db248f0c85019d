/*
 * launch.c — the minirun-oci command: start the kernel's grace period, then start Python.
 *
 *     minirun-oci ARGS...  ->  DIR/python -P -c 'from minirun.oci.main import main; main()' ARGS...
 *
 * (DIR is the directory this program is in: the venv's bin/, where pip installs it.)
 *
 * A container's first cgroup migration after a quiet spell waits for an RCU grace period
 * (runtime/cgroup_warm.py explains the lock): 10-25 ms here, more than the rest of a
 * `minirun-oci run`. The interpreter's own start takes ~7 ms before any Python code of ours
 * can start that wait. So for the verbs that start a process (create, run, exec) this program
 * first forks a helper that writes "0" into its own cgroup's cgroup.procs — a migration of
 * itself to where it already is, which starts the grace period — and execs the interpreter
 * at once. The grace period passes while Python starts; the warmer in Python keeps the lock
 * slow from then on, and the container's own join waits for nothing. The helper's pid is
 * passed on in MINIRUN_OCI_HELPER, and minirun/oci/main.py reaps it before it exits.
 *
 * The helper only ever moves itself, and exits at once: if it guesses its group's file wrong
 * (it looks only at the cgroup2 line of /proc/self/cgroup and the usual mount points), the
 * worst case is a helper that warmed nothing, and Python's warmer does the work, later.
 *
 * Built without a C library where c_ext/nolibc.h has a port (x86-64, arm64: its start is
 * microseconds, glibc's ~0.27 ms) and with libc elsewhere; where it cannot be built at all,
 * setup.py installs bin/minirun-oci, the Python script, instead.
 *
 * Man pages: cgroups(7) (cgroup.procs), fork(2), execve(2), proc(5) (/proc/self/exe).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifdef MR_NOLIBC
#include "nolibc.h"
#else
extern char **environ;
#endif

#define ENTRY "from minirun.oci.main import main; main()"
#define HELPER_VAR "MINIRUN_OCI_HELPER="
#define MAX_ARGS 4096

/* a starts with prefix */
static int starts_with(const char *a, const char *prefix)
{
    while (*prefix && *a == *prefix)
        a++, prefix++;
    return *prefix == '\0';
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* create, run and exec start a process; the other verbs never migrate anything */
static int starts_a_process(int argc, char **argv)
{
    for (int i = 1; i < argc && i < 9; i++)
        if (same(argv[i], "create") || same(argv[i], "run") || same(argv[i], "exec"))
            return 1;
    return 0;
}

/* dst = a + b, or 0 if it does not fit */
static int join(char *dst, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > size)
        return 0;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 1;
}

/* The helper: "0" into cgroup.procs of our cgroup2 group ("0::PATH" in /proc/self/cgroup),
 * under the hybrid mount point or the unified one. Nothing to do without cgroup2. */
static void migrate_self(void)
{
    char buf[4096];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *line = buf;
    while (line[0] != '0' || line[1] != ':' || line[2] != ':') {    /* the cgroup2 line */
        line = strchr(line, '\n');
        if (line == NULL)
            return;
        line++;
    }
    char *group = line + 3;                      /* "/PATH"; "/" for the root */
    char *end = strchr(group, '\n');
    if (end != NULL)
        *end = '\0';
    if (group[1] == '\0')
        group[0] = '\0';
    static const char *const mounts[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
    for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
        char dir[PATH_MAX], procs[PATH_MAX];
        if (!join(dir, sizeof(dir), mounts[i], group) || !join(procs, sizeof(procs), dir, "/cgroup.procs"))
            return;
        fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t w = write(fd, "0", 1);       /* returns once the grace period has passed */
            (void)w;
            close(fd);
            return;
        }
    }
}

static int fail(const char *what, const char *detail)
{
    static const char prefix[] = "minirun-oci: ";
    ssize_t w = write(2, prefix, sizeof(prefix) - 1);
    w = write(2, what, strlen(what));
    w = write(2, detail, strlen(detail));
    w = write(2, "\n", 1);
    (void)w;
    return 127;
}

int main(int argc, char **argv)
{
    char python[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", python, sizeof(python) - sizeof("python"));
    if (n <= 0)
        return fail("cannot read /proc/self/exe", "");
    python[n] = '\0';
    memcpy(strrchr(python, '/') + 1, "python", sizeof("python"));   /* /proc/self/exe is absolute */
    if (argc + 4 > MAX_ARGS)
        return fail("too many arguments", "");

    /* environ plus MINIRUN_OCI_HELPER=PID when a helper runs */
    static char *envp[MAX_ARGS + 1];
    static char helper_var[sizeof(HELPER_VAR) + 12];
    size_t n_env = 0;
    for (char **e = environ; *e != NULL && n_env < MAX_ARGS - 1; e++)
        if (!starts_with(*e, HELPER_VAR))
            envp[n_env++] = *e;
    if (starts_a_process(argc, argv)) {
        pid_t pid = fork();
        if (pid == 0) {
            migrate_self();
            _exit(0);
        }
        if (pid > 0) {
            char digits[12], *d = digits + sizeof(digits);
            *--d = '\0';
            do
                *--d = (char)('0' + pid % 10);
            while ((pid /= 10) > 0);
            join(helper_var, sizeof(helper_var), HELPER_VAR, d);
            envp[n_env++] = helper_var;
        }
    }
    envp[n_env] = NULL;

    /* -P: with -c, Python would put the working directory first on sys.path, and a module
     * there would be imported by a root process in place of ours (the caller's cwd is often a
     * bundle, someone else's directory) */
    static char *args[MAX_ARGS + 4];
    args[0] = python;
    args[1] = "-P";
    args[2] = "-c";
    args[3] = ENTRY;
    for (int i = 1; i < argc; i++)
        args[i + 3] = argv[i];
    args[argc + 3] = NULL;
    execve(python, args, envp);
    return fail(python, ": cannot run it (minirun-oci looks for python beside itself, in a venv's bin/)");
}
