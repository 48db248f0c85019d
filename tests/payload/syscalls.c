/*
 * syscalls — a tiny static test payload: make raw system calls and print what the kernel said.
 *
 *     syscalls NAME...        one line per call: "NAME 0" on success, else "NAME ERRNO_NAME"
 *     syscalls NAME=ARG       the same, with an argument (kill0=PID, ptrace=PID, umount=PATH)
 *     syscalls caps           the capability sets: "cap_eff HEX", "cap_prm HEX", "cap_inh HEX"
 *     syscalls grab_exe=NAME  the CVE-2019-5736 attempt (see grab_exe below)
 *
 * Raw syscall(2) so libc cannot hide or retry anything (glibc's clone3 fallback, for one). The
 * arguments are chosen so that, *without* a seccomp filter, each call fails for a reason other
 * than EPERM (a missing path, a bad address) or succeeds harmlessly: EPERM then means the filter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <string.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case ESRCH: return "ESRCH";
    case EEXIST: return "EEXIST";
    case EDQUOT: return "EDQUOT";
    default: return strerrorname_np(e) ? strerrorname_np(e) : "E?";
    }
}

static long call(const char *name, const char *arg)
{
    long pid = arg ? strtol(arg, NULL, 10) : 0;
    if (!strcmp(name, "kill0"))          /* kill0=PID: signal 0, "does it exist and may I" */
        return syscall(SYS_kill, pid, 0L);
    if (!strcmp(name, "ptrace"))         /* ptrace=PID: attach (detached at once on success) */
        return syscall(SYS_ptrace, PTRACE_ATTACH, pid, NULL, NULL) < 0 ? -1
               : syscall(SYS_ptrace, PTRACE_DETACH, pid, NULL, NULL) < 0 ? -1 : 0;
    if (!strcmp(name, "umount"))         /* umount=PATH: lift what is mounted there (a mask) */
        return syscall(SYS_umount2, arg ? arg : "/", (long)MNT_DETACH);
    if (!strcmp(name, "mount"))          /* unfiltered: ENOENT (the target is looked up first) */
        return syscall(SYS_mount, "none", "/no/such/dir", "tmpfs", 0L, NULL);
    if (!strcmp(name, "umount2"))        /* unfiltered: ENOENT */
        return syscall(SYS_umount2, "/no/such/dir", 0L);
    if (!strcmp(name, "add_key"))        /* unfiltered: a key in the session keyring */
        return syscall(SYS_add_key, "user", "minirun-test", "x", 1L, KEY_SPEC_PROCESS_KEYRING);
    if (!strcmp(name, "keyctl"))         /* unfiltered: the id of our session keyring */
        return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0L);
    if (!strcmp(name, "ptrace_pid1"))    /* unfiltered: EPERM too (no CAP_SYS_PTRACE) */
        return syscall(SYS_ptrace, PTRACE_ATTACH, 1L, NULL, NULL);
    if (!strcmp(name, "ptrace_traceme")) /* unfiltered: allowed without any capability */
        return syscall(SYS_ptrace, PTRACE_TRACEME, 0L, NULL, NULL);
    if (!strcmp(name, "reboot"))         /* unfiltered: EPERM too (no CAP_SYS_BOOT); an invalid
                                            command, so even root on a host changes nothing */
        return syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, 0x6d72L, NULL);
    if (!strcmp(name, "personality_linux32")) /* allowed by the default filter */
        return syscall(SYS_personality, 0x8L) < 0 ? -1 : syscall(SYS_personality, 0x0L) < 0 ? -1 : 0;
    if (!strcmp(name, "personality_query"))   /* allowed by the default filter */
        return syscall(SYS_personality, 0xffffffffL) < 0 ? -1 : 0;
    if (!strcmp(name, "personality_norandom")) /* ADDR_NO_RANDOMIZE: unfiltered, allowed */
        return syscall(SYS_personality, (long)ADDR_NO_RANDOMIZE) < 0 ? -1 : 0;
    if (!strcmp(name, "clone3")) {       /* an invalid size: unfiltered EINVAL */
        return syscall(SYS_clone3, NULL, 0L);
    }
    if (!strcmp(name, "clone_newuser") || !strcmp(name, "clone_plain")) {
        long flags = SIGCHLD | (name[6] == 'n' ? CLONE_NEWUSER : 0);
        long pid = syscall(SYS_clone, flags, 0L, NULL, NULL, 0L);
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid((pid_t)pid, NULL, 0);
        return pid < 0 ? -1 : 0;
    }
    if (!strcmp(name, "unshare_newuser"))
        return syscall(SYS_unshare, (long)CLONE_NEWUSER);
    if (!strcmp(name, "unshare_files"))  /* no new namespace: allowed */
        return syscall(SYS_unshare, (long)CLONE_FILES);
    if (!strcmp(name, "setns"))          /* unfiltered: EBADF */
        return syscall(SYS_setns, -1, 0L);
    if (!strcmp(name, "chown")) {        /* CAP_CHOWN: give a new file away */
        int fd = open("/tmp/syscalls-chown", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        long r = syscall(SYS_fchown, fd, 1L, 1L);
        close(fd);
        return r;
    }
    if (!strcmp(name, "mount_tmpfs")) {  /* CAP_SYS_ADMIN and a filter that allows mount */
        syscall(SYS_mkdir, "/tmp/syscalls-mnt", 0755L);
        return syscall(SYS_mount, "none", "/tmp/syscalls-mnt", "tmpfs", 0L, "size=16k");
    }
    if (!strcmp(name, "mkdir"))
        return syscall(SYS_mkdir, "/tmp/syscalls-mkdir", 0755L);
    errno = EINVAL;
    return -2;
}

/* "grab_exe=NAME" (CVE-2019-5736): wait up to 5 s for a process whose /proc/PID/exe names NAME
 * (the runtime's own binary, seen while it sets up an `exec`), keep it open, then try for up to
 * 5 s to reopen it for writing and append a line. Prints "grab_exe WROTE", or why not: NONE
 * (never saw it), EACCES/EPERM (saw processes it may not look at), or the errno of the write. */
static void grab_exe(const char *name)
{
    char link[64], target[4096];
    int fd = -1, last = ENOENT;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (now = start; fd < 0 && now.tv_sec - start.tv_sec < 5; clock_gettime(CLOCK_MONOTONIC, &now)) {
        for (int pid = 2; pid < 400 && fd < 0; pid++) {
            snprintf(link, sizeof(link), "/proc/%d/exe", pid);
            ssize_t n = readlink(link, target, sizeof(target) - 1);
            if (n < 0 && (errno == EACCES || errno == EPERM))
                last = errno;            /* a process we may not look at: the runtime, protected */
            if (n <= 0)
                continue;
            target[n] = '\0';
            if (!strstr(target, name))
                continue;
            fd = open(link, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                last = errno;
        }
        usleep(100);
    }
    if (fd < 0) {
        printf("grab_exe %s\n", last == ENOENT ? "NONE" : errname(last));
        return;
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    for (int i = 0; i < 500; i++) {
        int w = open(link, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w >= 0) {
            ssize_t n = write(w, "minirun-escaped\n", 16);
            printf("grab_exe %s\n", n == 16 ? "WROTE" : errname(errno));
            return;
        }
        last = errno;
        usleep(10000);
    }
    printf("grab_exe %s\n", errname(last));
}

/* "caps": the effective, permitted and inheritable sets as capget(2) reports them, in hex. */
static void print_caps(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &hdr, d) < 0) {
        printf("caps %s\n", errname(errno));
        return;
    }
    printf("cap_eff %llx\ncap_prm %llx\ncap_inh %llx\n",
           (unsigned long long)d[0].effective | (unsigned long long)d[1].effective << 32,
           (unsigned long long)d[0].permitted | (unsigned long long)d[1].permitted << 32,
           (unsigned long long)d[0].inheritable | (unsigned long long)d[1].inheritable << 32);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "grab_exe=", 9)) {
            grab_exe(argv[i] + 9);
            fflush(stdout);
            continue;
        }
        if (!strcmp(argv[i], "caps")) {
            print_caps();
            continue;
        }
        errno = 0;
        char name[64];
        const char *eq = strchr(argv[i], '=');
        size_t len = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        snprintf(name, sizeof(name), "%.*s", (int)len, argv[i]);
        long rc = call(name, eq ? eq + 1 : NULL);
        if (rc == -2) {
            fprintf(stderr, "syscalls: unknown call %s\n", argv[i]);
            return 2;
        }
        printf("%s %s\n", name, rc < 0 ? errname(errno) : "0");
    }
    return 0;
}
