/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "password.h"
#include "util.h"

char *password_free(char *password)
{
        /* sodium_free() wipes the pages before it unmaps them. */
        sodium_free(password);
        return NULL;
}

static char *secret_alloc(size_t size)
{
        if (sodium_init() < 0)
                return NULL;
        return sodium_malloc(size);
}

static volatile sig_atomic_t caught_signal;

static void remember_signal(int sig)
{
        caught_signal = sig;
}

/* Reads one line from fd into buf (PASSWORD_MAX + 2 bytes), a byte at a time so that nothing
 * after the line is consumed and no stdio buffer holds a copy. */
static int read_password_line(int fd, char *buf, bool *ret_newline)
{
        size_t n = 0;
        char c = 0;
        bool newline = false, nul = false;
        int r = 0;

        for (;;) {
                ssize_t k;

                if (caught_signal) {
                        r = -EINTR;
                        break;
                }
                k = read(fd, &c, 1);
                if (k < 0) {
                        if (errno == EINTR && !caught_signal)
                                continue;
                        r = -errno;
                        break;
                }
                if (k == 0) {
                        if (n == 0)
                                r = -ENODATA;
                        break;
                }
                if (c == '\n') {
                        newline = true;
                        break;
                }
                if (c == '\0')
                        nul = true;
                /* One more than PASSWORD_MAX for a CR before the LF. */
                if (n >= PASSWORD_MAX + 1) {
                        r = -E2BIG;
                        break;
                }
                buf[n++] = c;
        }
        sodium_memzero(&c, sizeof(c));
        if (r < 0)
                return r;
        if (newline && n > 0 && buf[n - 1] == '\r')
                n--;
        if (n > PASSWORD_MAX)
                return -E2BIG;
        if (nul)
                return -EBADMSG;
        buf[n] = '\0';
        if (ret_newline)
                *ret_newline = newline;
        return 0;
}

static int read_password_tty(const char *prompt, char *buf)
{
        static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
        struct sigaction saved_actions[ELEMENTSOF(signals)];
        struct sigaction action = {.sa_handler = remember_signal}; /* no SA_RESTART */
        struct termios saved, quiet;
        _cleanup_close_ int fd = -EBADF;
        bool newline = false;
        int r;

        fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (tcgetattr(fd, &saved) < 0)
                return -errno;

        /* Put the terminal back before dying of a signal, then die of it. */
        caught_signal = 0;
        sigemptyset(&action.sa_mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                (void)sigaction(signals[i], &action, &saved_actions[i]);

        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
        quiet.c_lflag |= ECHONL;
        (void)write_all(fd, prompt, strlen(prompt));
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
                r = -errno;
        else {
                r = read_password_line(fd, buf, &newline);
                (void)tcsetattr(fd, TCSAFLUSH, &saved);
                if (!newline)
                        (void)write_all(fd, "\n", 1);
        }

        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                (void)sigaction(signals[i], &saved_actions[i], NULL);
        if (caught_signal) {
                sodium_memzero(buf, PASSWORD_MAX + 2);
                (void)raise(caught_signal);
                return -EINTR;
        }
        return r;
}

int password_prompt(const char *prompt, char **ret_password)
{
        _cleanup_password_ char *password = NULL;
        int r;

        password = secret_alloc(PASSWORD_MAX + 2);
        if (!password)
                return -ENOMEM;
        if (isatty(STDIN_FILENO))
                r = read_password_tty(prompt, password);
        else
                r = read_password_line(STDIN_FILENO, password, NULL);
        if (r < 0)
                return r;
        *ret_password = TAKE_PTR(password);
        return 0;
}

int password_read_secret_file(const char *path, size_t max, char **ret_data, size_t *ret_size)
{
        _cleanup_password_ char *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* Room for one byte past max, which tells the file is too large. */
        data = secret_alloc(max + 2);
        if (!data)
                return -ENOMEM;
        r = read_fd_into(fd, data, max, &size);
        if (r < 0)
                return r;
        data[size] = '\0';
        *ret_data = TAKE_PTR(data);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int password_from_file(const char *path, char **ret_password)
{
        _cleanup_password_ char *data = NULL;
        size_t size, n;
        char *newline;
        int r;

        r = password_read_secret_file(path, PASSWORD_MAX + 2, &data, &size);
        if (r < 0)
                return r;
        if (memchr(data, '\0', size))
                return -EBADMSG;
        newline = memchr(data, '\n', size);
        n = newline ? (size_t)(newline - data) : size;
        if (newline && (size_t)(newline - data) + 1 != size)
                return -EBADMSG; /* more than one line */
        if (newline && n > 0 && data[n - 1] == '\r')
                n--;
        if (n > PASSWORD_MAX)
                return -E2BIG;
        sodium_memzero(data + n, size - n);
        data[n] = '\0';
        *ret_password = TAKE_PTR(data);
        return 0;
}

int password_ask(const char *password_file, const char *prompt, char **ret_password)
{
        int r;

        if (password_file) {
                r = password_from_file(password_file, ret_password);
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s must hold the password alone, on one line.",
                                               password_file);
                if (r == -E2BIG)
                        return log_error_errno(r, "The password in %s is longer than %d bytes.",
                                               password_file, PASSWORD_MAX);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the password from %s: %m",
                                               password_file);
                return 0;
        }

        r = password_prompt(prompt, ret_password);
        switch (r) {
        case 0:
                return 0;
        case -ENODATA:
                return log_error_errno(r, "No password given: standard input ended.");
        case -E2BIG:
                return log_error_errno(r, "The password is longer than %d bytes.", PASSWORD_MAX);
        case -EBADMSG:
                return log_error_errno(r, "The password contains a NUL byte.");
        case -EINTR:
                return log_error_errno(r, "Interrupted while reading the password.");
        default:
                return log_error_errno(r, "Cannot ask for the password (%m). Use --password-file "
                                          "FILE, or give it on standard input.");
        }
}
