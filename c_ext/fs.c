/*
 * fs.c — give the container its own root filesystem.
 *
 * All of it happens inside the container's new mount namespace, so the host never sees these
 * mounts and they vanish with the namespace: there is nothing to unmount after the container dies.
 *
 * Every path inside the container is resolved with openat2(RESOLVE_IN_ROOT): a symlink planted in
 * the image (say /proc -> /etc) resolves inside the new root, never to the host (CVE-2021-30465).
 * We then mount onto "/proc/self/fd/N" of that handle instead of the path.
 *
 * Man pages: mount_namespaces(7), mount(2), pivot_root(2), openat2(2), overlayfs (kernel docs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs.h"
#include "util.h"

#define MS_PROPAGATION (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

static int open_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    if (!*path)
        path = ".";
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/*
 * Walk `path` below rootfd one component at a time, creating missing directories, and return an
 * O_PATH fd of the parent of the last component; *last points at that component's name inside
 * buf. Each prefix is resolved in the root, so no symlink on the way can lead outside it.
 */
static int open_parent(int rootfd, const char *path, char *buf, size_t size, const char **last,
                       int step, int index, struct mr_err *err)
{
    size_t len = strlen(path);
    if (len + 1 > size) {
        errno = ENAMETOOLONG;
        return mr_fail(err, step, index, path);
    }
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    *last = slash ? slash + 1 : buf;
    if (!slash || slash == buf)
        return open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);

    int parent = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
    char *p = buf;
    while (*p == '/')
        p++;
    for (;;) {
        char *end = strchr(p, '/');
        if (!end || end >= slash)
            end = slash;
        char saved = *end;
        *end = '\0';
        int fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
        if (fd < 0 && errno == ENOENT) {
            if (mkdirat(parent, strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf, 0755) < 0 &&
                errno != EEXIST)
                return mr_fail(err, MR_STEP_MKDIR, index, buf);
            fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
        }
        if (fd < 0)
            return mr_fail(err, MR_STEP_MKDIR, index, buf);
        *end = saved;
        close(parent);
        parent = fd;
        if (end == slash)
            return parent;
        p = end + 1;
    }
}

/* Open (creating if needed) the mount point of an operation and return an O_PATH fd of it. */
static int open_mount_point(int rootfd, const struct mr_fsop *op, int index, struct mr_err *err)
{
    char buf[4096];
    const char *name;
    int parent = open_parent(rootfd, op->target, buf, sizeof(buf), &name, MR_STEP_MKDIR, index, err);
    if (parent < 0)
        return -1;
    if (*name && strcmp(name, "/") != 0) {
        int r = op->target_is_file
                    ? openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644)
                    : mkdirat(parent, name, 0755);
        if (r < 0 && errno != EEXIST) {
            close(parent);
            return mr_fail(err, MR_STEP_MKDIR, index, op->target);
        }
        if (r >= 0 && op->target_is_file)
            close(r);
    }
    close(parent);
    int fd = open_in_root(rootfd, op->target, O_PATH);
    if (fd < 0)
        return mr_fail(err, MR_STEP_MKDIR, index, op->target);
    return fd;
}

/* A remount changes one mount; a recursive bind brings the mounts below its source along, and
 * they would keep their own flags (a `-v /:/host:ro` with a writable /home below). Apply ro,
 * nosuid, nodev, noexec to the whole subtree with mount_setattr(AT_RECURSIVE), as Docker does.
 * A kernel before 5.12 lacks it (ENOSYS): there only the top mount is changed. */
static int set_attr_recursive(int fd, unsigned long flags)
{
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = (flags & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) |
                    (flags & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
                    (flags & MS_NODEV ? MOUNT_ATTR_NODEV : 0) |
                    (flags & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
    if (!attr.attr_set)
        return 0;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0 &&
        errno != ENOSYS)
        return -1;
    return 0;
}

static int do_mount(int rootfd, const struct mr_fsop *op, int index, struct mr_err *err)
{
    char fdpath[40];
    int fd = open_mount_point(rootfd, op, index, err);
    if (fd < 0)
        return -1;
    unsigned long flags = op->flags & ~MS_PROPAGATION;
    int r;
    if (op->kind == MR_OP_MOVE_MOUNT)          /* an idmapped bind, made by the parent */
        r = move_mount(op->fd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    else if (flags & MS_BIND)
        r = mount(op->source, mr_fd_path(fd, fdpath), NULL, MS_BIND | (flags & MS_REC), NULL);
    else
        r = mount(op->source, mr_fd_path(fd, fdpath), op->fstype, flags, op->data);
    close(fd);
    if (r < 0)
        return mr_fail(err, MR_STEP_MOUNT, index, NULL);

    /* A bind mount takes its flags (ro, nosuid, ...) only from a remount of the new mount, and
     * propagation is a property of the new mount too: reopen the path, which now ends on it. */
    int remount = (flags & MS_BIND) && (flags & ~(MS_BIND | MS_REC));
    if (!remount && !op->propagation)
        return 0;
    fd = open_in_root(rootfd, op->target, O_PATH);
    if (fd < 0)
        return mr_fail(err, MR_STEP_MOUNT, index, NULL);
    mr_fd_path(fd, fdpath);
    if (remount && mount(NULL, fdpath, NULL, MS_REMOUNT | MS_BIND | (flags & ~MS_REC), NULL) < 0)
        r = mr_fail(err, MR_STEP_MOUNT, index, NULL);
    else if (remount && (flags & MS_REC) && set_attr_recursive(fd, flags) < 0)
        r = mr_fail(err, MR_STEP_MOUNT, index, NULL);
    else if (op->propagation && mount(NULL, fdpath, NULL, op->propagation, NULL) < 0)
        r = mr_fail(err, MR_STEP_MOUNT, index, NULL);
    close(fd);
    return r;
}

static int do_node(int rootfd, const struct mr_fsop *op, int index, struct mr_err *err)
{
    char buf[4096];
    const char *name;
    int step = op->kind == MR_OP_MKNOD ? MR_STEP_MKNOD : op->kind == MR_OP_SYMLINK ? MR_STEP_SYMLINK
                                                                                   : MR_STEP_MKDIR;
    int parent = open_parent(rootfd, op->target, buf, sizeof(buf), &name, step, index, err);
    if (parent < 0)
        return -1;
    int r;
    if (op->kind == MR_OP_MKNOD) {
        r = mknodat(parent, name, (mode_t)op->mode, makedev(op->major, op->minor));
        if (r == 0 && (op->uid || op->gid))
            r = fchownat(parent, name, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
    }
    else if (op->kind == MR_OP_SYMLINK)
        r = symlinkat(op->source, parent, name);
    else
        r = mkdirat(parent, name, (mode_t)op->mode);
    if (r < 0 && errno == EEXIST && op->kind == MR_OP_MKDIR)
        r = 0;
    close(parent);
    return r < 0 ? mr_fail(err, step, index, NULL) : 0;
}

/* The mount list, in order. `items` (NULL unless tracing) gets each entry's end time. */
int mr_run_fsops(int rootfd, const struct mr_fsop *ops, int n, uint64_t *items, struct mr_err *err)
{
    for (int i = 0; i < n; i++) {
        int r = ops[i].kind == MR_OP_MOUNT || ops[i].kind == MR_OP_MOVE_MOUNT
                    ? do_mount(rootfd, &ops[i], i, err)
                    : do_node(rootfd, &ops[i], i, err);
        if (r < 0)
            return -1;
        if (items && i < MR_TRACE_ITEMS)
            items[i] = mr_now_ns();
    }
    return 0;
}

/* Make "/" private (so nothing we mount propagates back to the host), then mount the root:
 * an overlay of the image under a per-container upper dir, or a bind of a bundle's rootfs. */
int mr_setup_rootfs(const struct mr_plan *plan, struct mr_err *err)
{
    /* in the host's mount namespace (no mount namespace asked for), "/" is the host's: untouched */
    if (!plan->host_mount_ns &&
        mount(NULL, "/", NULL, plan->root_propagation ? plan->root_propagation : MS_REC | MS_PRIVATE,
              NULL) < 0)
        return mr_fail(err, MR_STEP_PROPAGATION, -1, "/");
    /* The layers' idmapped mounts go over the layers themselves, here only (our namespace is
     * private now): the overlay below then finds them by the paths it always uses. */
    for (int i = 0; i < plan->n_idmap; i++) {
        if (move_mount(plan->idmap_fds[i], "", AT_FDCWD, plan->idmap_targets[i],
                       MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return mr_fail(err, MR_STEP_MOVE_MOUNT, i, plan->idmap_targets[i]);
        close(plan->idmap_fds[i]);
    }
    int r = plan->rootfs_fstype
                ? mount(plan->rootfs_fstype, plan->rootfs, plan->rootfs_fstype, 0, plan->rootfs_data)
                : mount(plan->rootfs, plan->rootfs, NULL, MS_BIND | MS_REC, NULL);
    if (r < 0)
        return mr_fail(err, MR_STEP_ROOTFS, -1, plan->rootfs);
    return 0;
}

/* pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then removes the
 * old root from this namespace entirely, so the host's files are no longer reachable. */
int mr_pivot_root(int rootfd, struct mr_err *err)
{
    if (fchdir(rootfd) < 0)
        return mr_fail(err, MR_STEP_PIVOT_ROOT, -1, "fchdir");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return mr_fail(err, MR_STEP_PIVOT_ROOT, -1, NULL);
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return mr_fail(err, MR_STEP_UMOUNT_OLD, -1, "make old root slave");
    if (umount2(".", MNT_DETACH) < 0)
        return mr_fail(err, MR_STEP_UMOUNT_OLD, -1, NULL);
    if (chdir("/") < 0)
        return mr_fail(err, MR_STEP_PIVOT_ROOT, -1, "chdir /");
    return 0;
}

/* Hide a path: an empty read-only tmpfs over a directory, /dev/null over a file. */
int mr_mask_paths(const char *const *paths, int n, struct mr_err *err)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (lstat(paths[i], &st) < 0) {
            if (errno == ENOENT)
                continue;
            return mr_fail(err, MR_STEP_MASK, i, NULL);
        }
        int r = S_ISDIR(st.st_mode)
                    ? mount("tmpfs", paths[i], "tmpfs", MS_RDONLY, "size=0")
                    : mount("/dev/null", paths[i], NULL, MS_BIND, NULL);
        if (r < 0 && errno != ENOENT)
            return mr_fail(err, MR_STEP_MASK, i, NULL);
    }
    return 0;
}

/* Bind a path onto itself, then remount that bind read-only. */
int mr_readonly_paths(const char *const *paths, int n, struct mr_err *err)
{
    for (int i = 0; i < n; i++) {
        if (mount(paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            return mr_fail(err, MR_STEP_READONLY_PATH, i, NULL);
        }
        if (mount(NULL, paths[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            return mr_fail(err, MR_STEP_READONLY_PATH, i, NULL);
    }
    return 0;
}

/* (1, in the parent) See minirun.h. AT_RECURSIVE with `recursive` (an rbind's submounts too). */
int mr_idmap_tree(const char *path, int userns_fd, int recursive, int index, struct mr_err *err)
{
    memset(err, 0, sizeof(*err));
    mr_autoclose int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                       (recursive ? AT_RECURSIVE : 0));
    if (fd < 0)
        return mr_fail(err, MR_STEP_OPEN_TREE, index, path);
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)userns_fd;
    if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0)
        return mr_fail(err, MR_STEP_IDMAP, index, path);
    return mr_take_fd(&fd);
}
