/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rebuild.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Read in chunks of this size; each is logged and parsed before the next read. */
#define REBUILD_READ_CHUNK (64 * 1024)
/* Without a pidfd, how often to look whether the command has exited. */
#define REBUILD_TICK_MS 100

char **rebuild_argv_free(char **argv)
{
        if (argv)
                for (char **p = argv; *p; p++)
                        free(*p);
        free(argv);
        return NULL;
}

static void argv_freep(char ***p)
{
        *p = rebuild_argv_free(*p);
}

int rebuild_default_argv(const char *action, const char *flake, char ***ret_argv)
{
        _cleanup_(argv_freep) char **argv = NULL;
        const char *words[7];
        size_t n = 0;

        if (!action ||
            (!streq(action, "switch") && !streq(action, "boot") && !streq(action, "test")))
                return -EINVAL;
        /* The flake comes from a signed profile, still: it must not read as an option. */
        if (flake && (flake[0] == '\0' || flake[0] == '-'))
                return -EINVAL;

        words[n++] = "nixos-rebuild";
        words[n++] = action;
        if (flake) {
                words[n++] = "--flake";
                words[n++] = flake;
        }
        words[n++] = "--log-format";
        words[n++] = "internal-json";

        argv = calloc(n + 1, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                argv[i] = strdup(words[i]);
                if (!argv[i])
                        return -ENOMEM;
        }
        *ret_argv = TAKE_PTR(argv);
        return 0;
}

int rebuild_environment(const char *nix_config, const char *path, const char *ssh_config,
                        char ***ret_envp)
{
        _cleanup_(argv_freep) char **envp = NULL;
        size_t n = 0;

        if (!path)
                path = REBUILD_PATH_DEFAULT;
        if (!*path)
                return -EINVAL;
        if (nix_config && strlen(nix_config) > REBUILD_NIX_CONFIG_MAX)
                return -E2BIG;
        if (ssh_config && (ssh_config[0] != '/' || !string_is_safe(ssh_config, 4096, "/._+@-")))
                return -EINVAL;

        envp = calloc(6, sizeof(char *));
        if (!envp)
                return -ENOMEM;
        if (asprintf(&envp[n++], "PATH=%s", path) < 0 ||
            !(envp[n++] = strdup("HOME=" REBUILD_HOME)) ||
            !(envp[n++] = strdup("LANG=" REBUILD_LANG))) {
                envp[n - 1] = NULL; /* asprintf leaves it undefined */
                return -ENOMEM;
        }
        if (nix_config && asprintf(&envp[n++], "NIX_CONFIG=%s", nix_config) < 0) {
                envp[n - 1] = NULL;
                return -ENOMEM;
        }
        if (ssh_config && asprintf(&envp[n++], "NIX_SSHOPTS=-F %s", ssh_config) < 0) {
                envp[n - 1] = NULL;
                return -ENOMEM;
        }
        *ret_envp = TAKE_PTR(envp);
        return 0;
}

int rebuild_find_program(const char *program, const char *path, char **ret_file)
{
        bool denied = false;

        if (!program || !*program)
                return -ENOENT;
        if (strchr(program, '/')) {
                char *copy = strdup(program);

                if (!copy)
                        return -ENOMEM;
                *ret_file = copy;
                return 0;
        }
        if (!path)
                path = REBUILD_PATH_DEFAULT;
        for (const char *p = path;;) {
                size_t len = strcspn(p, ":");
                _cleanup_free_ char *file = NULL;
                struct stat st;

                /* An empty entry means the working directory: never for the agent. */
                if (len > 0) {
                        if (asprintf(&file, "%.*s/%s", (int)len, p, program) < 0)
                                return -ENOMEM;
                        if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
                                if (access(file, X_OK) == 0) {
                                        *ret_file = TAKE_PTR(file);
                                        return 0;
                                }
                                denied = true;
                        }
                }
                if (p[len] == '\0')
                        break;
                p += len + 1;
        }
        return denied ? -EACCES : -ENOENT;
}

int rebuild_log_path(const char *dir, uint64_t serial, int64_t now, char **ret_path)
{
        struct tm tm;
        time_t t = (time_t)now;
        char stamp[32];

        if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
                (void)snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
        /* Two attempts in the same second (a failed rebuild retried at once) get their own
         * logs: -2, -3 ... The log is opened O_EXCL, so a name is never reused. */
        for (unsigned n = 1; n <= REBUILD_LOG_SAME_SECOND_MAX; n++) {
                char *path;
                int k = n == 1 ? asprintf(&path, "%s/rebuild-%llu-%s.log", dir,
                                          (unsigned long long)serial, stamp)
                               : asprintf(&path, "%s/rebuild-%llu-%s-%u.log", dir,
                                          (unsigned long long)serial, stamp, n);

                if (k < 0)
                        return -ENOMEM;
                if (access(path, F_OK) < 0 && errno == ENOENT) {
                        *ret_path = path;
                        return 0;
                }
                free(path);
        }
        return -EEXIST;
}

/* Moves fd to a number above 2 (so that dup2() onto 0, 1, 2 in the child never meets it) with
 * O_CLOEXEC. */
static int fd_above_stdio(int fd)
{
        int moved;

        if (fd < 0 || fd > 2)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (moved < 0)
                moved = -errno;
        safe_close(fd);
        return moved;
}

/* In the child, between fork() and exec: async-signal-safe calls only. Never returns. */
_Noreturn static void child_exec(const char *file, char *const *argv, char *const *envp,
                                 int null_fd, int out_fd, int error_fd, int max_fd)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigset_t all;
        int e;

        /* A session of its own: a process group to kill as a whole, and no controlling
         * terminal to ask questions on. */
        if (setsid() < 0)
                goto fail;
        for (int sig = 1; sig < NSIG; sig++)
                (void)sigaction(sig, &sa, NULL);
        sigemptyset(&all);
        if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
                goto fail;

        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
            dup2(out_fd, STDERR_FILENO) < 0)
                goto fail;
        /* Whatever the agent holds open (and forgot to mark O_CLOEXEC) ends at exec; error_fd
         * too, which tells the parent that exec worked. */
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = 3; fd <= max_fd; fd++)
                        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (chdir("/") < 0)
                goto fail;
        umask(022);

        execve(file, argv, envp);
fail:
        e = errno;
        while (write(error_fd, &e, sizeof(e)) < 0 && errno == EINTR)
                ;
        _exit(127);
}

static void fill_result(struct rebuild_result *result, const struct nixlog *nl)
{
        const char *const *machines;
        const char *error = nixlog_last_error(nl);

        result->counts = *nixlog_counts(nl);
        machines = nixlog_machines(nl, &result->n_machines);
        for (size_t i = 0; i < result->n_machines; i++)
                (void)snprintf(result->machines[i], sizeof(result->machines[i]), "%s", machines[i]);
        (void)snprintf(result->last_error, sizeof(result->last_error), "%s", error ? error : "");
        (void)snprintf(result->tail, sizeof(result->tail), "%s", nixlog_tail(nl));
}

struct run {
        const struct rebuild_options *o;
        struct rebuild_result *result;
        struct nixlog *nl;
        int log_fd;
        char *chunk;
};

static void consume(struct run *run, const char *data, size_t size)
{
        if (run->log_fd >= 0) {
                int r = write_all(run->log_fd, data, size);

                if (r < 0) {
                        /* Keep the rebuild going: a full log disk is no reason to stop it. */
                        run->result->log_errno = -r;
                        run->log_fd = safe_close(run->log_fd);
                }
        }
        (void)nixlog_feed(run->nl, data, size);
}

/* Reads what the pipe has. Returns 1 while it stays open, 0 at its end, or a negative errno. */
static int read_output(struct run *run, int fd)
{
        ssize_t n = read(fd, run->chunk, REBUILD_READ_CHUNK);

        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : -errno;
        if (n == 0)
                return 0;
        consume(run, run->chunk, (size_t)n);
        return 1;
}

/* True when pid has exited (it stays a zombie: its group id cannot be reused yet). */
static bool child_exited(pid_t pid)
{
        siginfo_t si = {0};

        return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static int pidfd_open_or_not(pid_t pid)
{
        long fd = syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? -EBADF : (int)fd;
}

/* Reaps pid and records how it ended and how long it ran since start. */
static int reap(pid_t pid, uint64_t start, struct rebuild_result *result)
{
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        result->duration_ms = monotonic_ms() - start;
        if (WIFEXITED(status)) {
                result->exited = true;
                result->exit_status = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
                result->signal = WTERMSIG(status);
        }
        return 0;
}

/* Waits for the command, reading its output, and enforces the timeout. Reaps it. */
static int supervise(struct run *run, pid_t pid, int out_fd)
{
        const struct rebuild_options *o = run->o;
        struct rebuild_result *result = run->result;
        _cleanup_close_ int pidfd = pidfd_open_or_not(pid);
        uint64_t start = monotonic_ms(), deadline = UINT64_MAX, kill_at = UINT64_MAX;
        uint64_t next_progress = UINT64_MAX, drain_until = UINT64_MAX;
        uint64_t grace = o->kill_grace_sec ? o->kill_grace_sec : REBUILD_KILL_GRACE_SEC_DEFAULT;
        bool exited = false;
        int r;

        if (o->timeout_sec > 0)
                deadline = start + o->timeout_sec * 1000;
        if (o->on_progress && o->progress_interval_sec > 0)
                next_progress = start + o->progress_interval_sec * 1000;

        for (;;) {
                struct pollfd fds[2] = {
                    {.fd = out_fd, .events = POLLIN},
                    {.fd = exited ? -1 : pidfd, .events = POLLIN},
                };
                uint64_t now = monotonic_ms(), wake = UINT64_MAX;
                int timeout_ms;

                if (exited && (out_fd < 0 || now >= drain_until))
                        break;
                wake = deadline < wake ? deadline : wake;
                wake = kill_at < wake ? kill_at : wake;
                wake = next_progress < wake ? next_progress : wake;
                wake = drain_until < wake ? drain_until : wake;
                if (pidfd < 0 && !exited && now + REBUILD_TICK_MS < wake)
                        wake = now + REBUILD_TICK_MS;
                timeout_ms = wake == UINT64_MAX ? -1
                             : wake <= now      ? 0
                                           : (int)(wake - now < INT32_MAX ? wake - now : INT32_MAX);

                r = poll(fds, 2, timeout_ms);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0 && out_fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                        r = read_output(run, out_fd);
                        if (r <= 0)
                                out_fd = -1; /* closed by the caller */
                }

                if (!exited && child_exited(pid)) {
                        exited = true;
                        /* Leftovers of its group go with it, while its zombie keeps the
                         * group id from being reused. */
                        (void)kill(-pid, SIGKILL);
                        drain_until = monotonic_ms() + REBUILD_DRAIN_MS;
                }

                now = monotonic_ms();
                if (!exited && now >= deadline && !result->timed_out) {
                        result->timed_out = true;
                        (void)kill(-pid, SIGTERM);
                        kill_at = now + grace * 1000;
                        deadline = UINT64_MAX;
                }
                if (!exited && now >= kill_at && !result->killed) {
                        result->killed = true;
                        (void)kill(-pid, SIGKILL);
                        kill_at = UINT64_MAX;
                }
                if (now >= next_progress) {
                        o->on_progress(nixlog_counts(run->nl), now - start, o->userdata);
                        next_progress = now + o->progress_interval_sec * 1000;
                }
        }

        return reap(pid, start, result);
}

/* A pipe, both ends above stdio and O_CLOEXEC; the caller closes them, even on failure.
 * Returns 0, -errno, or -EMFILE when an end could not be moved. */
static int make_pipe(int *read_fd, int *write_fd)
{
        int fds[2];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        *read_fd = fd_above_stdio(fds[0]);
        *write_fd = fd_above_stdio(fds[1]);
        return *read_fd < 0 || *write_fd < 0 ? -EMFILE : 0;
}

/* The log of one attempt: a new file, exactly 0640 whatever the umask. Returns the descriptor
 * or -errno. */
static int open_log(const char *path)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_APPEND,
                  0640);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, 0640) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* The child reports a failed exec (or set-up) on error_fd; a clean end of it means exec worked,
 * and also that setsid() is done, so the group can be signalled. Returns 0 then; otherwise
 * reaps the child, records the exec failure and returns its -errno. */
static int wait_exec(pid_t pid, int error_fd, struct rebuild_result *result)
{
        int child_errno, status;
        ssize_t n;

        do
                n = read(error_fd, &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        if (n != sizeof(child_errno))
                return 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        result->exec_failed = true;
        result->exec_errno = child_errno;
        return child_errno > 0 ? -child_errno : -EIO;
}

/* After a supervised run: the counts from the log, the log file synced, the verdict. */
static int finish(struct rebuild_result *result, struct nixlog *nl, int log_fd)
{
        (void)nixlog_finish(nl);
        fill_result(result, nl);
        if (log_fd >= 0 && fsync(log_fd) < 0 && result->log_errno == 0)
                result->log_errno = errno;

        if (result->timed_out)
                return -ETIME;
        if (result->exited && result->exit_status == 0)
                return 0;
        return -EPROTO;
}

int rebuild_run(const struct rebuild_options *o, struct rebuild_result *result)
{
        _cleanup_(argv_freep) char **envp = NULL;
        _cleanup_free_ char *file = NULL, *chunk = NULL;
        _cleanup_(nixlog_freep) struct nixlog *nl = NULL;
        _cleanup_close_ int log_fd = -EBADF, null_fd = -EBADF, out_read = -EBADF,
                            out_write = -EBADF, error_read = -EBADF, error_write = -EBADF;
        struct run run;
        struct rlimit rl;
        int max_fd = 65535, r;
        size_t n_args = 0;
        pid_t pid;

        *result = (struct rebuild_result){0};
        if (!o->argv || !o->argv[0])
                return -EINVAL;
        while (o->argv[n_args])
                if (++n_args > REBUILD_ARGS_MAX)
                        return -E2BIG;

        r = rebuild_environment(o->nix_config, o->path, o->ssh_config, &envp);
        if (r < 0)
                return r;
        nl = nixlog_new();
        chunk = malloc(REBUILD_READ_CHUNK);
        if (!nl || !chunk)
                return -ENOMEM;

        r = rebuild_find_program(o->argv[0], o->path ? o->path : REBUILD_PATH_DEFAULT, &file);
        if (r < 0) {
                result->exec_failed = true;
                result->exec_errno = -r;
                return r;
        }

        if (o->log_path) {
                log_fd = open_log(o->log_path);
                if (log_fd < 0)
                        return log_fd;
        }

        null_fd = fd_above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY));
        if (null_fd < 0)
                return null_fd == -1 ? -errno : null_fd;
        r = make_pipe(&out_read, &out_write);
        if (r >= 0)
                r = make_pipe(&error_read, &error_write);
        if (r < 0)
                return r;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < 65536)
                max_fd = (int)rl.rlim_cur - 1;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(file, o->argv, envp, null_fd, out_write, error_write, max_fd);

        out_write = safe_close(out_write);
        error_write = safe_close(error_write);

        r = wait_exec(pid, error_read, result);
        if (r < 0)
                return r;
        result->started = true;

        run = (struct run){.o = o, .result = result, .nl = nl, .log_fd = log_fd, .chunk = chunk};
        r = supervise(&run, pid, out_read);
        log_fd = run.log_fd; /* closed by consume() when writing failed */
        if (r < 0) {
                /* Cannot watch it any more: do not leave it behind. */
                (void)kill(-pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return r;
        }
        return finish(result, nl, log_fd);
}
