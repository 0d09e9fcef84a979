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
        log_warning("Attempt %u failed: %s: %s", attempt->attempts, attempt->url,
                    attempt->message);
}

int cmd_fetch(int argc, char **argv)
{
        enum {
                ARG_MIRROR = 0x100,
                ARG_CA_FILE,
                ARG_MAX_SIZE,
                ARG_DEADLINE,
                ARG_CONNECT_TIMEOUT,
                ARG_STALL_TIMEOUT,
        };
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
        char *mirrors[FETCH_COMMAND_MIRRORS_MAX];
        struct fetch_options o;
        struct fetch_error e;
        _cleanup_free_ char *data = NULL;
        const char *output = NULL, *path;
        size_t n_mirrors = 0, size = 0;
        uint64_t v;
        int c, r;

        fetch_options_init(&o);
        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0) {
                switch (c) {
                case ARG_MIRROR:
                        if (n_mirrors >= ELEMENTSOF(mirrors)) {
                                log_error("Too many --mirror options (at most %d).",
                                          FETCH_COMMAND_MIRRORS_MAX);
                                return AGENT_EXIT_USAGE;
                        }
                        mirrors[n_mirrors++] = optarg;
                        break;
                case ARG_CA_FILE:
                        o.ca_file = optarg;
                        break;
                case ARG_MAX_SIZE:
                        r = parse_u64(optarg, &v);
                        if (r < 0 || v == 0 || v > SIZE_MAX - 1) {
                                log_error("Invalid --max-size '%s': expected a positive number "
                                          "of bytes.",
                                          optarg);
                                return AGENT_EXIT_USAGE;
                        }
                        o.max_size = (size_t)v;
                        break;
                case ARG_DEADLINE:
                        if (parse_seconds_ms("--deadline", optarg, &o.deadline_ms) < 0)
                                return AGENT_EXIT_USAGE;
                        break;
                case ARG_CONNECT_TIMEOUT:
                        if (parse_seconds_ms("--connect-timeout", optarg,
                                             &o.connect_timeout_ms) < 0)
                                return AGENT_EXIT_USAGE;
                        break;
                case ARG_STALL_TIMEOUT:
                        if (parse_seconds_ms("--stall-timeout", optarg, &o.stall_timeout_ms) <
                            0)
                                return AGENT_EXIT_USAGE;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        show_help(stdout);
                        return AGENT_EXIT_OK;
                default:
                        show_help(stderr);
                        return AGENT_EXIT_USAGE;
                }
        }
        if (optind != argc - 1) {
                log_error("Expected exactly one PATH. Run 'nixprov-agent fetch --help'.");
                return AGENT_EXIT_USAGE;
        }
        path = argv[optind];
        if (n_mirrors == 0) {
                log_error("No mirror given: pass at least one --mirror URL.");
                return AGENT_EXIT_USAGE;
        }
        for (size_t i = 0; i < n_mirrors; i++) {
                _cleanup_free_ char *url = NULL;

                r = fetch_url_join(mirrors[i], path, &url);
                if (r == -EPROTONOSUPPORT) {
                        log_error("Mirror '%s' is not an http://, https:// or file:// URL.",
                                  mirrors[i]);
                        return AGENT_EXIT_USAGE;
                }
                if (r < 0) {
                        log_error_errno(r, "Invalid mirror '%s' or path '%s': %m", mirrors[i],
                                        path);
                        return AGENT_EXIT_USAGE;
                }
        }
        if (o.ca_file && access(o.ca_file, R_OK) < 0) {
                log_error_errno(negative_errno(), "Cannot read CA file %s: %m", o.ca_file);
                return AGENT_EXIT_USAGE;
        }
        o.mirrors = mirrors;
        o.n_mirrors = n_mirrors;
        o.on_attempt = log_attempt;

        r = fetch_global_init();
        if (r < 0) {
                log_error_errno(r, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_FETCH;
        }
        r = fetch_get(&o, path, &data, &size, &e);
        fetch_global_cleanup();
        if (r < 0) {
                char deadline[64] = "";

                if (e.deadline_reached)
                        (void)snprintf(deadline, sizeof(deadline),
                                       ", when the deadline of %llu s was reached",
                                       (unsigned long long)(o.deadline_ms / 1000));
                /* e.message says more than strerror(r) ("HTTP 503 ...", curl's words). */
                log_error_errno(r, "Failed to fetch %s: %s: %s; gave up after %u attempt%s%s.",
                                path, e.url[0] ? e.url : "(no URL)", e.message, e.attempts,
                                e.attempts == 1 ? "" : "s", deadline);
                return AGENT_EXIT_FETCH;
        }

        if (output) {
                r = write_file_atomic(output, data, size, 0644, 0);
                if (r < 0) {
                        log_error_errno(r, "Failed to write %s: %m", output);
                        return AGENT_EXIT_WRITE;
                }
                log_info("Fetched %s (%zu bytes, %u attempt%s) into %s.", e.url, size, e.attempts,
                         e.attempts == 1 ? "" : "s", output);
        } else {
                r = write_all(STDOUT_FILENO, data, size);
                if (r < 0) {
                        log_error_errno(r, "Failed to write to standard output: %m");
                        return AGENT_EXIT_WRITE;
                }
        }
        return AGENT_EXIT_OK;
}
