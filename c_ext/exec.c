/*
 * exec.c — minirun-exec: the last step of every container process, run from a sealed memfd.
 *
 *     minirun-exec REPORT_FD PATH SEARCH_PATH ARGV...      (environment: the container's)
 *
 * The native child is a copy of the runtime (the host's Python) until its execve. Had it exec'd
 * the user's program directly, "/proc/self/exe" at that moment would be the host's interpreter:
 * a program that links to it, or a script starting "#!/proc/self/exe", would run the host's
 * binary inside the container, and a process there could open it and write to it — the
 * CVE-2019-5736 escape. So the child execs this program from a sealed in-memory copy (Python
 * makes it, runtime/plan.py: exec_trampoline) and this program execs the user's: from now on
 * /proc/self/exe is the sealed copy, which no one can change. Everything else (namespaces,
 * credentials, capabilities, the seccomp filter) was set by the child and survives execve.
 *
 * A program that cannot be run is reported on REPORT_FD as the child would ({errno, "exec"}),
 * then this exits 127 (not found) or 126, like a shell.
 *
 * Man pages: execveat(2), memfd_create(2) (file sealing), proc(5) (/proc/pid/exe).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef MR_NOLIBC
#include "nolibc.h"          /* no C library: it would double this program's cost (nolibc.h) */
#else
extern char **environ;
#endif
#include "exec_path.h"
#include "sync.h"

int main(int argc, char **argv)
{
    if (argc < 5) {                         /* e.g. run again through "#!/proc/self/exe" */
        static const char msg[] = "minirun-exec: runs only as the last step of a container start\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        return 126;
    }
    int report_fd = 0;
    for (const char *c = argv[1]; *c >= '0' && *c <= '9'; c++)
        report_fd = report_fd * 10 + (*c - '0');
    fcntl(report_fd, F_SETFD, FD_CLOEXEC);  /* EOF at execve tells the parent it ran */

    struct mr_msg msg;
    memset(&msg, 0, sizeof(msg));
    mr_exec_path(argv[2], argv[3], argv + 4, environ, &msg.err);
    msg.type = MR_MSG_ERROR;
    ssize_t n = send(report_fd, &msg, sizeof(msg), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK)         /* OCI create/start: the exec fifo */
        n = write(report_fd, &msg, sizeof(msg));
    return msg.err.errno_ == ENOENT ? 127 : 126;
}
