/*
 * minirun-monitor — the parent of one container, for as long as it runs.
 *
 *   minirun-monitor ID EXIT_FILE OOM_FILE LOG_FILE OUT_FD ERR_FD EVENTS_FILE EVENT_ATTRS
 *                   [ON_EXIT_COMMAND ...]
 *
 * spawn.c forks the caller, clones the container from that fork, then execs this program there, so
 * the container is our child. We copy its stdout/stderr into LOG_FILE (the CRI log format: one
 * "TIMESTAMP STREAM F|P TEXT" line per line of output, P for a partial line), wait for it, read the
 * cgroup's oom_kill counter from OOM_FILE, and write EXIT_FILE atomically:
 *   {"exit_code": 137, "signal": 9, "oom_killed": true, "finished_at": "2026-11-25T21:00:00.1Z"}
 * Just before EXIT_FILE (so anything that waits for it sees the events first), we append an "oom"
 * event if the OOM killer struck and a "die" event to EVENTS_FILE, the JSON-lines log of
 * `minirun events` (minirun/observe/events.py), each line in one O_APPEND write(2) so it never
 * interleaves with other writers'; EVENT_ATTRS are JSON members Python encoded for us
 * (`"image":"busybox","name":"web"`).
 * Then we exec ON_EXIT_COMMAND if given (`run -d --rm` removes the container that way), or exit
 * with the container's status. "-" stands for "none" in any of the file and fd arguments.
 *
 * It is a few pages of C, not Python: one of these lives beside every detached container, and it
 * should cost next to nothing (see benchmarks/monitor_memory.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

struct stream {
    int fd;
    const char *name;
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static int log_fd = -1;

static void timestamp(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%09ldZ", ts.tv_nsec);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void emit(struct stream *s, const char *text, size_t n, int full)
{
    char head[80];
    timestamp(head, sizeof(head));
    size_t h = strlen(head);
    h += (size_t)snprintf(head + h, sizeof(head) - h, " %s %c ", s->name, full ? 'F' : 'P');
    write_all(log_fd, head, h);
    write_all(log_fd, text, n);
    write_all(log_fd, "\n", 1);
}

/* Append what was read; emit every complete line, and a partial one when the buffer is full. */
static void consume(struct stream *s, const char *data, size_t n)
{
    while (n) {
        size_t room = sizeof(s->buf) - s->len;
        size_t take = n < room ? n : room;
        memcpy(s->buf + s->len, data, take);
        s->len += take;
        data += take;
        n -= take;
        size_t start = 0;
        for (size_t i = 0; i < s->len; i++)
            if (s->buf[i] == '\n') {
                emit(s, s->buf + start, i - start, 1);
                start = i + 1;
            }
        if (start == 0 && s->len == sizeof(s->buf)) {
            emit(s, s->buf, s->len, 0);
            start = s->len;
        }
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
    }
}

static void copy_logs(struct stream *streams, int n)
{
    struct pollfd pfd[2];
    char chunk[8192];
    for (;;) {
        int open_count = 0;
        for (int i = 0; i < n; i++) {
            pfd[i].fd = streams[i].fd;
            pfd[i].events = POLLIN;
            open_count += streams[i].fd >= 0;
        }
        if (!open_count)
            return;
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int i = 0; i < n; i++) {
            if (streams[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(streams[i].fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                if (streams[i].len)
                    emit(&streams[i], streams[i].buf, streams[i].len, 0);
                streams[i].len = 0;
                close(streams[i].fd);
                streams[i].fd = -1;
                continue;
            }
            consume(&streams[i], chunk, (size_t)r);
        }
    }
}

/* The "oom_kill N" line of memory.oom_control (v1) or memory.events (v2). */
static long oom_kills(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, "oom_kill ", 9) == 0)
            return strtol(line + 9, NULL, 10);
    return 0;
}

static void write_exit_file(const char *path, int code, int sig, int oom)
{
    char tmp[4096], ts[64], body[256];
    timestamp(ts, sizeof(ts));
    int n = snprintf(body, sizeof(body),
                     "{\"exit_code\": %d, \"signal\": %d, \"oom_killed\": %s, \"finished_at\": \"%s\"}\n",
                     code, sig, oom ? "true" : "false", ts);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    write_all(fd, body, (size_t)n);   /* no fsync: like state.json, a record of a process */
    close(fd);
    rename(tmp, path);
}

/* One `minirun events` line: Docker's fields, in a single write(2) on an O_APPEND descriptor. */
static void write_event(const char *path, const char *id, const char *action, const char *attrs,
                        int exit_code)
{
    char line[2048], code[48] = "";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (exit_code >= 0)
        snprintf(code, sizeof(code), "\"exitCode\":\"%d\"%s", exit_code, *attrs ? "," : "");
    int n = snprintf(line, sizeof(line),
                     "{\"Type\":\"container\",\"Action\":\"%s\",\"Actor\":{\"ID\":\"%s\","
                     "\"Attributes\":{%s%s}},\"scope\":\"local\",\"time\":%lld,\"timeNano\":%lld}\n",
                     action, id, code, attrs, (long long)ts.tv_sec, ns);
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;                            /* attributes too long for one line: say nothing */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w;
    do w = write(fd, line, (size_t)n); while (w < 0 && errno == EINTR);
    close(fd);
}

static int none(const char *arg) { return strcmp(arg, "-") == 0; }

int main(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: minirun-monitor ID EXIT_FILE OOM_FILE LOG_FILE OUT_FD ERR_FD "
                        "EVENTS_FILE EVENT_ATTRS [CMD...]\n");
        return 125;
    }
    /* The terminal's Ctrl-C and hang-up are for the container, not for its keeper. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_NAME, "minirun-monitor", 0, 0, 0);
    sigset_t unblocked;                     /* spawn.c execs us with every signal blocked */
    sigemptyset(&unblocked);
    sigprocmask(SIG_SETMASK, &unblocked, NULL);

    struct stream streams[2] = {
        { .fd = none(argv[5]) ? -1 : atoi(argv[5]), .name = "stdout" },
        { .fd = none(argv[6]) ? -1 : atoi(argv[6]), .name = "stderr" },
    };
    if (!none(argv[4]) && (streams[0].fd >= 0 || streams[1].fd >= 0)) {
        log_fd = open(argv[4], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (log_fd >= 0)
            copy_logs(streams, 2);
    }

    int status = 0;
    pid_t pid;
    do pid = waitpid(-1, &status, 0); while (pid < 0 && errno == EINTR);
    int code = 125, sig = 0;
    if (pid > 0 && WIFEXITED(status))
        code = WEXITSTATUS(status);
    else if (pid > 0 && WIFSIGNALED(status)) {
        sig = WTERMSIG(status);
        code = 128 + sig;
    }
    int oom = !none(argv[3]) && oom_kills(argv[3]) > 0;
    if (!none(argv[7])) {
        const char *attrs = none(argv[8]) ? "" : argv[8];
        if (oom)
            write_event(argv[7], argv[1], "oom", attrs, -1);
        write_event(argv[7], argv[1], "die", attrs, code);
    }
    if (!none(argv[2]))
        write_exit_file(argv[2], code, sig, oom);
    if (argc > 9) {
        execv(argv[9], argv + 9);
        return 125;
    }
    return code;
}
