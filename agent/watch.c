/* SPDX-License-Identifier: MIT */
/* nixprov-agent watch: one long-poll open at a time (?wait= with If-None-Match), and the run of
 * 'nixprov-agent run' (engine.c) for each new profile that arrives. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include <sodium.h>

#include "context.h"
#include "engine.h"
#include "fetch.h"
#include "log.h"
#include "util.h"

#define WATCH_WAIT_DEFAULT 300
#define WATCH_WAIT_MAX 3600                 /* what nixprov serve holds at most (ROUTES_WAIT_MAX) */
#define WATCH_MIN_INTERVAL_MS (10 * 1000)   /* between the starts of two runs that found nothing */
#define WATCH_BACKOFF_INITIAL_MS (1 * 1000) /* after a failed run, doubled, full jitter */
#define WATCH_BACKOFF_MAX_MS (60 * 1000)

static volatile int watch_stop;

static void watch_on_signal(int signal_number)
{
        (void)signal_number;
        watch_stop = 1;
}

static void watch_help(void)
{
        printf(
            "Usage: nixprov-agent watch [OPTIONS...]\n\n"
            "Keeps one profile request open at the server (?wait=SECONDS, If-None-Match with\n"
            "the applied profile's ETag): the server answers when a new profile is published\n"
            "for this machine, and the agent applies it as 'nixprov-agent run' does, reports\n"
            "included; when the wait ends (304) it asks again. After a failed run it retries\n"
            "after 1 s doubling to 60 s, with full jitter; a server that answers at once\n"
            "(a static mirror) is asked at most every 10 s. Stops on SIGTERM or SIGINT: a\n"
            "wait is cut short, a run in progress ends first.\n\n"
            "Options:\n"
            "  -c, --config FILE      the agent configuration (default " AGENT_CONFIG_PATH_DEFAULT
            ")\n"
            "  -r, --root DIR         the device's root directory (default /)\n"
            "      --cmdline FILE     the kernel command line (default /proc/cmdline; - none)\n"
            "  -m, --machine-id ID    this machine's id (default: ROOT/etc/machine-id)\n"
            "  -w, --wait SECONDS     how long one request waits (default %d, at most %d)\n"
            "  -h, --help             show this help\n\n"
            "Exit codes: 0 stopped by a signal, 2 usage or configuration error.\n",
            WATCH_WAIT_DEFAULT, WATCH_WAIT_MAX);
}

/* Returns 1 to go on, or an exit code's negation. */
static int watch_parse_args(int argc, char **argv, struct agent_context *ctx, unsigned *wait)
{
        static const struct option options[] = {
            CONTEXT_LONG_OPTIONS,
            CONTEXT_LONG_OPTION_MACHINE_ID,
            {"wait", required_argument, NULL, 'w'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        uint64_t v;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, CONTEXT_SHORT_OPTIONS_MACHINE_ID "w:h", options,
                                NULL)) >= 0) {
                if (context_parse_option(ctx, c, optarg))
                        continue;
                if (c == 'w') {
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > WATCH_WAIT_MAX) {
                                log_error("--wait must be a number of seconds from 1 to %d, not "
                                          "'%s'.",
                                          WATCH_WAIT_MAX, optarg);
                                return -AGENT_EXIT_USAGE;
                        }
                        *wait = (unsigned)v;
                } else if (c == 'h') {
                        watch_help();
                        return -AGENT_EXIT_OK;
                } else
                        return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent watch --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

/* Sleeps until until_ms (monotonic), or until a signal asks to stop. */
static void watch_sleep_until(uint64_t until_ms)
{
        while (!watch_stop && monotonic_ms() < until_ms)
                sleep_until_monotonic_ms(MIN(until_ms, monotonic_ms() + 100));
}

/* One run with the long-poll, in a context of its own (the configuration read again, the spool
 * opened and closed), made from the options in shared. Returns its exit code. */
static int watch_once(const struct agent_context *shared, unsigned wait, bool *ret_applied)
{
        struct agent_context ctx;
        struct run_state r = {.ctx = &ctx, .wait_seconds = wait};
        struct fetch_options *fetch;
        int exit_code;

        context_init(&ctx);
        ctx.config_path = shared->config_path;
        ctx.root = shared->root;
        ctx.cmdline_path = shared->cmdline_path;
        ctx.machine_id = shared->machine_id;
        if (run_load_config(&ctx, &r.config) < 0 || context_fetch_options(&ctx, &fetch) < 0)
                exit_code = AGENT_EXIT_USAGE;
        else {
                /* A held request, a retry's sleep or a report's delivery ends at SIGTERM. */
                fetch->cancel = &watch_stop;
                exit_code = engine_run(&r);
        }
        *ret_applied = exit_code == AGENT_EXIT_OK && r.trust.profile && !r.up_to_date;
        run_state_done(&r);
        context_done(&ctx);
        return exit_code;
}

/* Until a signal; returns 0, or the exit code of a first run that found the configuration
 * unusable. */
static int watch_loop(const struct agent_context *shared, unsigned wait)
{
        unsigned failures = 0;

        for (bool first = true; !watch_stop; first = false) {
                uint64_t started = monotonic_ms(), cap;
                bool applied = false;
                int exit_code = watch_once(shared, wait, &applied);

                if (watch_stop)
                        break;
                if (first && exit_code == AGENT_EXIT_USAGE)
                        return exit_code;
                if (exit_code == AGENT_EXIT_OK) {
                        /* After a new serial, at once: that request waits. After nothing new,
                         * at once too when it was a whole wait, else (a server that does not
                         * hold requests) not before WATCH_MIN_INTERVAL_MS. */
                        failures = 0;
                        if (!applied)
                                watch_sleep_until(started + WATCH_MIN_INTERVAL_MS);
                        continue;
                }
                cap = WATCH_BACKOFF_INITIAL_MS << MIN(failures, 6u);
                cap = MIN(cap, (uint64_t)WATCH_BACKOFF_MAX_MS);
                failures++;
                log_info("Run failed (exit %d); asking again within %llu s.", exit_code,
                         (unsigned long long)(cap / 1000));
                watch_sleep_until(monotonic_ms() + randombytes_uniform((uint32_t)cap + 1));
        }
        return AGENT_EXIT_OK;
}

int cmd_watch(int argc, char **argv)
{
        struct sigaction sa = {.sa_handler = watch_on_signal, .sa_flags = SA_RESTART};
        struct agent_context ctx;
        unsigned wait = WATCH_WAIT_DEFAULT;
        int k, exit_code;

        context_init(&ctx);
        k = watch_parse_args(argc, argv, &ctx, &wait);
        if (k <= 0)
                return -k;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
                log_error_errno(-errno, "Failed to handle SIGTERM: %m");
                return AGENT_EXIT_USAGE;
        }
        k = fetch_global_init();
        if (k < 0) {
                log_error_errno(k, "Failed to initialize libcurl: %m");
                return AGENT_EXIT_USAGE;
        }
        log_info("Watching for new profiles (each request waits up to %u s).", wait);
        exit_code = watch_loop(&ctx, wait);
        if (exit_code == AGENT_EXIT_OK)
                log_info("Stopped by a signal.");
        context_done(&ctx);
        fetch_global_cleanup();
        return exit_code;
}
