/* fs.h — the filesystem half of a container: rootfs, mounts, pivot_root, masked paths. */
#ifndef MINIRUN_FS_H
#define MINIRUN_FS_H

#include "minirun.h"

int mr_setup_rootfs(const struct mr_plan *plan, struct mr_err *err);
int mr_run_fsops(int rootfd, const struct mr_fsop *ops, int n, uint64_t *items, struct mr_err *err);
int mr_pivot_root(int rootfd, struct mr_err *err);
int mr_mask_paths(const char *const *paths, int n, struct mr_err *err);
int mr_readonly_paths(const char *const *paths, int n, struct mr_err *err);

#endif
