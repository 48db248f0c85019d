/*
 * minirun-init — a tiny PID 1 for `run --init`.
 *
 * PID 1 of a pid namespace has two jobs most programs do not do: it must reap orphaned zombies
 * (they are re-parented to it), and since the kernel ignores signals that PID 1 has no handler
 * for, it must pass signals on to the program that should get them. This init runs the command
 * as its child, forwards every catchable signal to it, reaps everything, and exits with the
 * command's status (128+N if a signal N killed it). Built static: the image may have no libc.
 *
 * Man pages: pid_namespaces(7) ("The namespace init process"), signal(7), wait(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int first = (argc > 1 && argv[1][0] == '-' && argv[1][1] == '-' && !argv[1][2]) ? 2 : 1;
    if (first >= argc) {
        fprintf(stderr, "usage: minirun-init [--] COMMAND [ARG...]\n");
        return 125;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);

    pid_t child = fork();
    if (child < 0) {
        perror("minirun-init: fork");
        return 125;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], argv + first);
        fprintf(stderr, "minirun-init: exec %s: %m\n", argv[first]);
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != child)
                continue;   /* an orphan: reaped, nothing more to do */
            /* the command is gone; let the kernel take the rest of the namespace down */
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
}
