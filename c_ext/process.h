/* process.h — the process half of a container: credentials, capabilities, stdio, exec. */
#ifndef MINIRUN_PROCESS_H
#define MINIRUN_PROCESS_H

#include <stdint.h>
#include <sys/types.h>
#include "sync.h"

struct mr_creds {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int n_groups;
    int set_caps;
    int cap_last;
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

void mr_reset_signals(void);
int mr_setup_stdio(const int stdio[3], struct mr_err *err);
int mr_open_terminal(int sync_fd, unsigned short rows, unsigned short cols, struct mr_err *err);
int mr_drop_bounding(const struct mr_creds *c, struct mr_err *err);
int mr_set_ids_and_caps(const struct mr_creds *c, struct mr_err *err);
int mr_load_seccomp(const void *filter, int len, struct mr_err *err);
int mr_exec(const char *path, const char *search_path, char *const argv[], char *const envp[],
            struct mr_err *err);
int mr_send_msg(int fd, const struct mr_msg *msg, int pass_fd);

#endif
