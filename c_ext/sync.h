/*
 * sync.h — the conversation between the Python parent and the native child.
 *
 * One SOCK_SEQPACKET|SOCK_CLOEXEC socketpair; every message is one struct mr_msg. The numbers are
 * the sync points referred to in spawn.c and runtime/sync.py:
 *
 *   parent (Python)                              child (C, new namespaces)
 *   1 build plan, create cgroup
 *   2 mr_spawn: fork monitor ─ clone ──────────▶ 3 join cgroup, block on the socket
 *     (3' share_memory: no uid maps, network,     3' or: join cgroup, then all of 6 and execve
 *     hooks or exec fifo; mr_spawn returns           without waiting, in the caller's memory
 *     once the child has exec'd; no GO, 4, 5)        (spawn.c, clone_container)
 *   4 uid/gid maps, network (what the child
 *     must not run without)
 *   5 send GO, then record the pid ────────────▶ 6 mounts
 *     (OCI hooks) createRuntime, prestart ◀────── 6b MR_MSG_HOOKS: the namespaces and mounts
 *     in ours, createContainer in its                 exist, the root is not pivoted yet;
 *     namespaces; then GO ───────────────────────▶    wait for GO
 *                                                6 pivot_root, hostname, rlimits,
 *                                                  credentials, capabilities, no_new_privs
 *     (terminal) receive the pty master ◀──────── 6a MR_MSG_TTY with SCM_RIGHTS
 *   7 read: MR_MSG_ERROR ◀──────────────────────── 7 any failure: {errno, step, index}, exit
 *           MR_MSG_READY ◀──────────────────────── 7 (exec fifo) ready, now blocks on the fifo
 *           MR_MSG_TRACE ◀──────────────────────── 7 (trace) the step timestamps
 *           EOF ◀───────────────────────────────── 9 execve succeeded (the socket is CLOEXEC)
 *   8 (`start`) open exec.fifo for reading ────▶ 8 the fifo's writer unblocks; the same fifo
 *                                                  carries an error record if execve fails,
 *                                                  EOF means the program runs.
 */
#ifndef MINIRUN_SYNC_H
#define MINIRUN_SYNC_H

#include <stdint.h>
#include "steps.h"

enum mr_msg_type {
    MR_MSG_GO = 1,
    MR_MSG_READY = 2,
    MR_MSG_ERROR = 3,
    MR_MSG_TTY = 4,
    MR_MSG_TRACE = 5,
    MR_MSG_HOOKS = 6,
};

struct mr_err {
    int errno_;        /* errno of the failed syscall */
    int step;          /* enum mr_step */
    int index;         /* which entry of a list (mount[3]); -1 when not a list */
    char text[256];    /* the object involved, when Python cannot know it (a path component) */
};

/* How many entries of a step's list (the mount list; exec's namespaces) a trace times one by one */
#define MR_TRACE_ITEMS 64

struct mr_msg {
    int type;
    struct mr_err err;
    /* MR_MSG_TRACE: CLOCK_MONOTONIC nanoseconds at the end of each step, 0 = not run */
    uint64_t stamps[MR_STEP__COUNT];
    /* MR_MSG_TRACE: the end of each entry of the list the step "mount" (run) or "setns" (exec)
     * works through, in the plan's order; 0 = not run or beyond MR_TRACE_ITEMS */
    uint64_t items[MR_TRACE_ITEMS];
};

#endif
