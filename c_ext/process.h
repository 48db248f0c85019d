/* process.h — the process half of a container: signals, stdio, credentials, capabilities, exec. */
#ifndef MINIRUN_PROCESS_H
#define MINIRUN_PROCESS_H

#include "minirun.h"

void mr_reset_signals(void);
int mr_process_stdio(const struct mr_process *pr, int sync_fd, struct mr_err *err);
int mr_process_credentials(const struct mr_process *pr, struct mr_err *err);
int mr_process_late_seccomp(const struct mr_process *pr, struct mr_err *err);
void mr_process_exec(const struct mr_process *pr, int report_fd, struct mr_err *err);
int mr_send_msg(int fd, const struct mr_msg *msg, int pass_fd);
void mr_send_trace(int fd, const uint64_t *stamps, const uint64_t *items);
_Noreturn void mr_report_and_exit(int sync_fd, const struct mr_err *err);

#endif
