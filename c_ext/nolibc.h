/*
 * nolibc.h — the little of a C library that minirun-exec needs, as system calls.
 *
 * minirun-exec runs once per container start, between the child's last step and the user's
 * program, so its own start is paid every time. Linked with glibc (static), it spends ~0.27 ms
 * on glibc's start-up (relocations, TLS, stdio, locale) and exit before it does its one job,
 * execve; built with this header instead (setup.py: -nostdlib, -DMR_NOLIBC), it starts in
 * microseconds and is 9 KB rather than 750 KB (Python copies it into a sealed memfd once per
 * process, runtime/plan.py). Only x86-64 and arm64 are written; elsewhere this header is an
 * #error and setup.py builds minirun-exec with libc as before.
 *
 * What is here: _start (argc, argv and envp from the initial stack), errno, and the calls
 * exec.c and exec_path.h make: execve, fcntl, send, write, exit, strchr, strlen, memcpy,
 * memset; and for minirun-oci's launcher (launch.c, the same reasons): open, read, close,
 * readlink, fork, _exit, strrchr. glibc's headers still give the types and constants.
 * Man pages: syscall(2), execve(2).
 */
#ifndef MINIRUN_NOLIBC_H
#define MINIRUN_NOLIBC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>

char **environ;
static int mr_errno;

int *__errno_location(void) { return &mr_errno; }    /* what glibc's errno macro calls */

static long mr_syscall(long n, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
                     "r"(r9) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    long ret = x0;
#else
#error "nolibc.h: no system call convention for this architecture (setup.py then uses libc)"
#endif
    if (ret < 0 && ret > -4096) {        /* the kernel returns -errno */
        mr_errno = (int)-ret;
        return -1;
    }
    return ret;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    return (int)mr_syscall(SYS_execve, (long)path, (long)argv, (long)envp, 0, 0, 0);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return (int)mr_syscall(SYS_fcntl, fd, cmd, arg, 0, 0, 0);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    return mr_syscall(SYS_sendto, fd, (long)buf, (long)len, flags, 0, 0);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    return mr_syscall(SYS_write, fd, (long)buf, (long)len, 0, 0, 0);
}

/* for minirun-oci's launcher (launch.c); the *at calls, as arm64 has no open or readlink */
int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    long mode = va_arg(ap, long);
    va_end(ap);
    return (int)mr_syscall(SYS_openat, AT_FDCWD, (long)path, flags, mode, 0, 0);
}

ssize_t read(int fd, void *buf, size_t len)
{
    return mr_syscall(SYS_read, fd, (long)buf, (long)len, 0, 0, 0);
}

int close(int fd)
{
    return (int)mr_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
}

ssize_t readlink(const char *restrict path, char *restrict buf, size_t len)
{
    return mr_syscall(SYS_readlinkat, AT_FDCWD, (long)path, (long)buf, (long)len, 0, 0);
}

/* fork(2) as clone(2) with only SIGCHLD: the child runs on a copy of our stack */
pid_t fork(void)
{
    return (pid_t)mr_syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
}

__attribute__((noreturn)) void _exit(int status)
{
    for (;;)
        mr_syscall(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

__attribute__((noreturn)) static void mr_exit(int status)
{
    for (;;)
        mr_syscall(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

char *strchr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return (char *)s;
        if (!*s)
            return NULL;
    }
}

char *strrchr(const char *s, int c)
{
    const char *last = NULL;
    for (;; s++) {
        if (*s == (char)c)
            last = s;
        if (!*s)
            return (char *)last;
    }
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* volatile: the compiler must not turn these loops back into calls to themselves */
void *memcpy(void *dst, const void *src, size_t n)
{
    volatile char *d = dst;
    const char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    volatile char *d = dst;
    while (n--)
        *d++ = (char)c;
    return dst;
}

int main(int argc, char **argv);

/* The kernel starts us with argc, then argv[], NULL, then envp[], NULL on the stack. */
__attribute__((noreturn, used)) static void mr_start(long *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    environ = argv + argc + 1;
    mr_exit(main(argc, argv));
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call mr_start\n  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n"
        "  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  and sp, x0, #-16\n  bl mr_start\n");
#endif

#endif
