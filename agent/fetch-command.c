/* SPDX-License-Identifier: MIT */
/* nixprov-agent fetch: one download with the fetch phase's mirrors, retries, deadline and
 * cap, for integration tests and for an operator debugging a device. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "fetch.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

/* More mirrors than any fleet needs; keeps the argument list bounded. */
#define FETCH_COMMAND_MIRRORS_MAX 16

static void show_help(FILE *f)
{
        fprintf(f,
                "Usage: nixprov-agent fetch [OPTIONS...] PATH\n\n"
                "Downloads PATH from the mirrors, tried in order, with the fetch phase's\n"
                "retries, backoff, deadline and size cap, and writes the complete body to\n"
                "OUT or to stdout. On failure writes nothing and exits 3.\n\n"
                "  --mirror URL          base URL: http://, https:// or file:// (repeatable,\n"
                "                        at most %d; at least one)\n"
                "  --ca-file FILE        trust only this CA (default: the system CA store)\n"
                "  --max-size BYTES      refuse a larger body (default %zu)\n"
                "  --deadline SECONDS    overall time limit (default %llu)\n"
                "  --connect-timeout S   per connection attempt (default %llu)\n"
                "  --stall-timeout S     abort a transfer idle this long (default %llu)\n"
                "  -o, --output OUT      write the body to OUT atomically, mode 0644\n"
                "  -h, --help            show this help\n",
                FETCH_COMMAND_MIRRORS_MAX, FETCH_MAX_SIZE_DEFAULT,
                (unsigned long long)(FETCH_DEADLINE_MS_DEFAULT / 1000),
                (unsigned long long)(FETCH_CONNECT_TIMEOUT_MS_DEFAULT / 1000),
                (unsigned long long)(FETCH_STALL_TIMEOUT_MS_DEFAULT / 1000));
}

static int parse_seconds_ms(const char *option, const char *s, uint64_t *ret_ms)
{
        uint64_t v;
        int r;

        r = parse_u64(s, &v);
        if (r < 0 || v == 0 || v > UINT64_MAX / 1000)
                return log_error_errno(r < 0 ? r : -ERANGE,
                                       "Invalid %s '%s': expected a positive number of seconds.",
                                       option, s);
        *ret_ms = v * 1000;
        return 0;
}

static void log_attempt(const struct fetch_error *attempt, int error, void *userdata)
{
        (void)userdata;
        (void)error;
        log_warning("Attempt %u failed: %s: %s", attempt->attempts, attempt->url, attempt->message);
}

/* What the command line asks for. */
struct fetch_args {
        char *mirrors[FETCH_COMMAND_MIRRORS_MAX];
        size_t n_mirrors;
        struct fetch_options options;
        const char *output;
        const char *path;
};

enum {
        ARG_MIRROR = 0x100,
        ARG_CA_FILE,
        ARG_MAX_SIZE,
        ARG_DEADLINE,
        ARG_CONNECT_TIMEOUT,
        ARG_STALL_TIMEOUT,
};

/* One option other than --help. Returns 0, or -1 after logging why it is refused. */
static int parse_option(struct fetch_args *a, int c, char *arg)
{
        struct fetch_options *o = &a->options;
        uint64_t v;
        int r;

        switch (c) {
        case ARG_MIRROR:
                if (a->n_mirrors >= ELEMENTSOF(a->mirrors)) {
                        log_error("Too many --mirror options (at most %d).",
                                  FETCH_COMMAND_MIRRORS_MAX);
                        return -1;
                }
                a->mirrors[a->n_mirrors++] = arg;
                return 0;
        case ARG_CA_FILE:
                o->ca_file = arg;
                return 0;
        case ARG_MAX_SIZE:
                r = parse_u64(arg, &v);
                if (r < 0 || v == 0 || v > SIZE_MAX - 1) {
                        log_error("Invalid --max-size '%s': expected a positive number "
                                  "of bytes.",
                                  arg);
                        return -1;
                }
                o->max_size = (size_t)v;
                return 0;
        case ARG_DEADLINE:
                return parse_seconds_ms("--deadline", arg, &o->deadline_ms) < 0 ? -1 : 0;
        case ARG_CONNECT_TIMEOUT:
                return parse_seconds_ms("--connect-timeout", arg, &o->connect_timeout_ms) < 0 ? -1
                                                                                              : 0;
        case ARG_STALL_TIMEOUT:
                return parse_seconds_ms("--stall-timeout", arg, &o->stall_timeout_ms) < 0 ? -1 : 0;
        case 'o':
                a->output = arg;
                return 0;
        default:
                show_help(stderr);
                return -1;
        }
}

/* Every mirror joins with the path into a URL we can fetch, and the CA file is readable.
 * Returns 0, or -1 after logging what is wrong. */
static int check_args(const struct fetch_args *a)
{
        int r;

        for (size_t i = 0; i < a->n_mirrors; i++) {
                _cleanup_free_ char *url = NULL;

                r = fetch_url_join(a->mirrors[i], a->path, &url);
                if (r == -EPROTONOSUPPORT) {
                        log_error("Mirror '%s' is not an http://, https:// or file:// URL.",
                                  a->mirrors[i]);
                        return -1;
                }
                if (r < 0) {
                        log_error_errno(r, "Invalid mirror '%s' or path '%s': %m", a->mirrors[i],
                                        a->path);
                        return -1;
                }
        }
        if (a->options.ca_file && access(a->options.ca_file, R_OK) < 0) {
                log_error_errno(negative_errno(), "Cannot read CA file %s: %m", a->options.ca_file);
                return -1;
        }
        return 0;
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_args(int argc, char **argv, struct fetch_args *a)
{
        static const struct option options[] = {
            {"mirror", required_argument, NULL, ARG_MIRROR},
            {"ca-file", required_argument, NULL, ARG_CA_FILE},
            {"max-size", required_argument, NULL, ARG_MAX_SIZE},
            {"deadline", required_argument, NULL, ARG_DEADLINE},
            {"connect-timeout", required_argument, NULL, ARG_CONNECT_TIMEOUT},
            {"stall-timeout", required_argument, NULL, ARG_STALL_TIMEOUT},
            {"output", required_argument, NULL, 'o'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0) {
                if (c == 'h') {
                        show_help(stdout);
                        return -AGENT_EXIT_OK;
                }
                if (parse_option(a, c, optarg) < 0)
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc - 1) {
                log_error("Expected exactly one PATH. Run 'nixprov-agent fetch --help'.");
                return -AGENT_EXIT_USAGE;
        }
        a->path = argv[optind];
        if (a->n_mirrors == 0) {
                log_error("No mirror given: pass at least one --mirror URL.");
                return -AGENT_EXIT_USAGE;
        }
        if (check_args(a) < 0)
                return -AGENT_EXIT_USAGE;
        return 1;
}

/* Writes the body to OUT or to stdout. Returns an exit code. */
static int write_body(const char *output, const char *data, size_t size,
                      const struct fetch_error *e)
{
        int r;

        if (output) {
                r = write_file_atomic(output, data, size, 0644, 0);
                if (r < 0) {
                        log_error_errno(r, "Failed to write %s: %m", output);
                        return AGENT_EXIT_WRITE;
                }
                log_info("Fetched %s (%zu bytes, %u attempt%s) into %s.", e->url, size, e->attempts,
                         e->attempts == 1 ? "" : "s", output);
                return AGENT_EXIT_OK;
        }
        r = write_all(STDOUT_FILENO, data, size);
        if (r < 0) {
                log_error_errno(r, "Failed to write to standard output: %m");
                return AGENT_EXIT_WRITE;
        }
        return AGENT_EXIT_OK;
}

int cmd_fetch(int argc, char **argv)
{
        struct fetch_args a = {};
        struct fetch_options *o = &a.options;
        struct fetch_error e;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        fetch_options_init(o);
        r = parse_args(argc, argv, &a);
        if (r <= 0)
                return -r;
        o->mirrors = a.mirrors;
        o->n_mirrors = a.n_mirrors;
        o->on_attempt = log_attempt;

        r = fetch_global_init();
        if (r < 0) {
                log_error_errno(r, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_FETCH;
        }
        r = fetch_get(o, a.path, &data, &size, &e);
        fetch_global_cleanup();
        if (r < 0) {
                char deadline[64] = "";

                if (e.deadline_reached)
                        (void)snprintf(deadline, sizeof(deadline),
                                       ", when the deadline of %llu s was reached",
                                       (unsigned long long)(o->deadline_ms / 1000));
                /* e.message says more than strerror(r) ("HTTP 503 ...", curl's words). */
                log_error_errno(r, "Failed to fetch %s: %s: %s; gave up after %u attempt%s%s.",
                                a.path, e.url[0] ? e.url : "(no URL)", e.message, e.attempts,
                                e.attempts == 1 ? "" : "s", deadline);
                return AGENT_EXIT_FETCH;
        }
        return write_body(a.output, data, size, &e);
}
