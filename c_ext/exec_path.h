/*
 * exec_path.h — execve with a PATH search, as a shell does it; shared by the child (process.c)
 * and minirun-exec (exec.c). Only the stack and syscalls: safe after clone().
 */
#ifndef MINIRUN_EXEC_PATH_H
#define MINIRUN_EXEC_PATH_H

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Build the candidate "DIR/path" in buf for the PATH entry that starts at dir (an empty entry
 * means ".", as in a shell) and return where the next entry starts, or NULL after the last one.
 * *fits is 0 when the candidate would not fit in buf: that entry is then skipped. */
static inline const char *mr_path_candidate(const char *dir, const char *path, char *buf,
                                            size_t size, int *fits)
{
    const char *end = strchr(dir, ':');
    size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
    size_t plen = strlen(path);
    *fits = dlen + plen + 2 <= size;
    if (*fits) {
        size_t n = 0;
        if (dlen == 0)
            buf[n++] = '.';
        memcpy(buf + n, dir, dlen);
        n += dlen;
        buf[n++] = '/';
        memcpy(buf + n, path, plen + 1);
    }
    return end ? end + 1 : NULL;
}

/* execve, searching search_path like execvp when path has no '/'. ENOENT everywhere means "not
 * found" (127); a file found but not executable wins over not found (126), as in a shell. */
static inline int mr_exec_path(const char *path, const char *search_path, char *const argv[],
                                char *const envp[], struct mr_err *err)
{
    if (strchr(path, '/') || !search_path || !*search_path) {
        execve(path, argv, envp);
        return mr_fail(err, MR_STEP_EXEC, -1, path);
    }
    char buf[4096];
    int saw_eacces = 0, fits;
    for (const char *dir = search_path; dir; ) {
        dir = mr_path_candidate(dir, path, buf, sizeof(buf), &fits);
        if (!fits)
            continue;
        execve(buf, argv, envp);
        if (errno == EACCES || errno == ENOEXEC || errno == EPERM)
            saw_eacces = errno;
        else if (errno != ENOENT && errno != ENOTDIR)
            return mr_fail(err, MR_STEP_EXEC, -1, buf);
    }
    errno = saw_eacces ? saw_eacces : ENOENT;
    return mr_fail(err, MR_STEP_EXEC, -1, path);
}

/* Is there a program to run, as execve would find it? OCI `create` asks before it reports READY,
 * as runc does, so a missing program fails `create` (which callers such as podman turn into
 * 127) rather than `start`. A regular file we may execute is found; one we may not is EACCES
 * (126) unless another directory has a runnable one; nothing at all is ENOENT (127). */
static inline int mr_lookup_exec(const char *path, const char *search_path, struct mr_err *err)
{
    struct stat st;
    if (strchr(path, '/') || !search_path || !*search_path) {
        if (stat(path, &st) < 0)
            return mr_fail(err, MR_STEP_EXEC, -1, path);
        if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
            errno = EACCES;
            return mr_fail(err, MR_STEP_EXEC, -1, path);
        }
        return 0;
    }
    char buf[4096];
    int saw_eacces = 0, fits;
    for (const char *dir = search_path; dir; ) {
        dir = mr_path_candidate(dir, path, buf, sizeof(buf), &fits);
        if (fits && stat(buf, &st) == 0) {
            if (S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
                return 0;
            saw_eacces = 1;
        }
    }
    errno = saw_eacces ? EACCES : ENOENT;
    return mr_fail(err, MR_STEP_EXEC, -1, path);
}

#endif
