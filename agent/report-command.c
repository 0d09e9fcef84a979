/* SPDX-License-Identifier: MIT */
/* nixprov-agent report and nixprov-agent flush: emit one report the way a run does (an
 * operator marking a manual intervention, or a test), and deliver the spooled reports. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "context.h"
#include "enroll.h"
#include "fetch.h"
#include "log.h"
#include "report-log.h"
#include "util.h"

/* More servers than any fleet needs; keeps the argument list bounded. */
#define REPORT_COMMAND_SERVERS_MAX 16
#define REPORT_FLUSH_DEADLINE_S_DEFAULT 60

struct report_command {
        struct agent_context ctx; /* the shared options; the configuration, identity, keys, spool */
        const struct agent_config *config; /* the context's */
        const char *spool_dir;             /* --spool; NULL: ROOT/STATE-DIR/reports */
        char *servers[REPORT_COMMAND_SERVERS_MAX];
        size_t n_servers;
        const char *ca_file;
        uint64_t deadline_ms;
        struct fetch_options send;
        struct devicekey *key;      /* signs the reports; made on first use; the context's */
        struct report_spool *spool; /* the context's */
        bool curl;                  /* fetch_global_init() done */
};

static const char common_help[] =
    "  -c, --config FILE     the agent configuration: the state directory (device keys,\n"
    "                        spool) and, without --server, the servers and CA file\n"
    "                        (default " AGENT_CONFIG_PATH_DEFAULT ")\n"
    "  -r, --root DIR        the device's root directory (default /)\n"
    "      --cmdline FILE    kernel command line over the configuration (default\n"
    "                        /proc/cmdline; - for none)\n"
    "  -m, --machine-id ID   this machine's id (default: ROOT/etc/machine-id, else DMI)\n"
    "      --spool DIR       the report spool (default ROOT/STATE-DIR/reports, that is\n"
    "                        " REPORT_SPOOL_DIR_DEFAULT ")\n"
    "      --server URL      base URL of the nixprov server: http:// or https://\n"
    "                        (repeatable, tried in order, at most 16; default: the\n"
    "                        configuration's server.urls)\n"
    "      --ca-file FILE    trust only this CA (default: the system CA store)\n"
    "  -h, --help            show this help\n";

static void show_report_help(FILE *f)
{
        fprintf(f,
                "Usage: nixprov-agent report --phase PHASE --status STATUS [OPTIONS...]\n\n"
                "Emits one report the way a provisioning run does: gives it the next sequence\n"
                "number of this device, spools it durably in the spool directory, then tries to\n"
                "deliver everything pending to the server within the deadline. Operators can\n"
                "use it to mark a manual intervention in the device's history, e.g.\n"
                "  nixprov-agent report --phase done --status ok --message 'disk replaced'\n"
                "A report that cannot be delivered now stays spooled for 'nixprov-agent flush'\n"
                "or the next run. Never put a secret in --message or --error.\n\n"
                "      --phase PHASE     identify, enroll, fetch, verify, plan, builders, write,\n"
                "                        rebuild, report or done\n"
                "      --status STATUS   started, progress, ok or failed\n"
                "      --serial N        the profile serial the report is about\n"
                "      --message TEXT    for people (cut to %d bytes)\n"
                "      --error TEXT      what went wrong (cut to %d bytes)\n"
                "      --deadline S      seconds for the delivery attempt (default %llu)\n"
                "%s\n"
                "Exit status: 0 when the report is spooled (delivered or not: a delivery\n"
                "failure is only a warning), 2 for a usage error, 8 when it could not be\n"
                "spooled.\n",
                REPORT_MESSAGE_MAX, REPORT_ERROR_MAX,
                (unsigned long long)(REPORT_EMIT_DEADLINE_MS_DEFAULT / 1000), common_help);
}

static void show_flush_help(FILE *f)
{
        fprintf(
            f,
            "Usage: nixprov-agent flush --server URL [OPTIONS...]\n\n"
            "Delivers the spooled reports to the server in sequence order, deleting each\n"
            "one the server accepted (a report it already had included), and prints how\n"
            "many were sent and how many remain. It first enrolls once (without waiting):\n"
            "the server takes only reports signed by an enrolled device key, and a device\n"
            "provisioned offline has not enrolled yet. A spooled file that is corrupt, or that\n"
            "the server refuses as malformed, is moved to DIR/bad/ and delivery goes on.\n\n"
            "      --deadline S      seconds for the whole delivery (default %d)\n"
            "%s\n"
            "Exit status: 0 when every report is delivered (or none was pending);\n"
            "3 when reports remain because the server could not be reached or refused\n"
            "them (the fetch failure code: the spool itself is fine, and the reports are\n"
            "kept for a later flush); 2 for a usage error; 8 when the spool cannot be\n"
            "read or changed.\n",
            REPORT_FLUSH_DEADLINE_S_DEFAULT, common_help);
}

enum {
        ARG_SPOOL = 0x100,
        ARG_SERVER,
        ARG_CA_FILE,
        ARG_DEADLINE,
        ARG_PHASE,
        ARG_STATUS,
        ARG_SERIAL,
        ARG_MESSAGE,
        ARG_ERROR,
};

#define REPORT_COMMAND_SHORT_OPTIONS CONTEXT_SHORT_OPTIONS_MACHINE_ID "h"
#define REPORT_COMMAND_LONG_OPTIONS                                                                \
        CONTEXT_LONG_OPTIONS, CONTEXT_LONG_OPTION_MACHINE_ID,                                      \
            {"spool", required_argument, NULL, ARG_SPOOL},                                         \
            {"server", required_argument, NULL, ARG_SERVER},                                       \
            {"ca-file", required_argument, NULL, ARG_CA_FILE},                                     \
            {"deadline", required_argument, NULL, ARG_DEADLINE},                                   \
        {                                                                                          \
                "help", no_argument, NULL, 'h'                                                     \
        }

/* Handles an option common to both commands, the context's included. Returns 1 when handled,
 * 0 when not ours, or AGENT_EXIT_USAGE's negation on a bad value. */
static int parse_common_option(struct report_command *c, int opt, char *arg)
{
        uint64_t v;

        if (context_parse_option(&c->ctx, opt, arg))
                return 1;
        switch (opt) {
        case ARG_SPOOL:
                c->spool_dir = arg;
                return 1;
        case ARG_SERVER:
                if (c->n_servers >= ELEMENTSOF(c->servers)) {
                        log_error("Too many --server options (at most %d).",
                                  REPORT_COMMAND_SERVERS_MAX);
                        return -AGENT_EXIT_USAGE;
                }
                if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
                        log_error("Server '%s' is not an http:// or https:// URL.", arg);
                        return -AGENT_EXIT_USAGE;
                }
                c->servers[c->n_servers++] = arg;
                return 1;
        case ARG_CA_FILE:
                c->ca_file = arg;
                return 1;
        case ARG_DEADLINE:
                if (parse_u64(arg, &v) < 0 || v == 0 || v > UINT64_MAX / 1000) {
                        log_error("Invalid --deadline '%s': expected a positive number of "
                                  "seconds.",
                                  arg);
                        return -AGENT_EXIT_USAGE;
                }
                c->deadline_ms = v * 1000;
                return 1;
        default:
                return 0;
        }
}

/* Checks the options, loads the configuration, the identity and the device keys, and prepares
 * the send options. Returns AGENT_EXIT_OK or an exit code. */
static int report_command_prepare(struct report_command *c)
{
        const struct identity *id;
        int r;

        /* The configuration names the state directory (the device keys and the spool) and,
         * without --server, the servers. */
        r = context_config(&c->ctx, &c->config);
        if (r < 0)
                return log_error_errno(r, "%s", c->ctx.error), AGENT_EXIT_USAGE;
        if (c->n_servers == 0)
                for (size_t i = 0; i < c->config->n_urls && i < ELEMENTSOF(c->servers); i++)
                        if (strncmp(c->config->urls[i], "file://", 7) != 0) /* no reports there */
                                c->servers[c->n_servers++] = c->config->urls[i];
        if (!c->ca_file)
                c->ca_file = c->config->ca_file;
        r = context_identity(&c->ctx, &id);
        if (r < 0)
                return log_error_errno(r, "%s", c->ctx.error), AGENT_EXIT_USAGE;
        if (c->ca_file && access(c->ca_file, R_OK) < 0) {
                log_error_errno(negative_errno(), "Cannot read CA file %s: %m", c->ca_file);
                return AGENT_EXIT_USAGE;
        }
        r = context_keys(&c->ctx, &c->key);
        if (r < 0)
                return log_error_errno(r, "%s", c->ctx.error), AGENT_EXIT_WRITE;

        fetch_options_init(&c->send);
        c->send.mirrors = c->servers;
        c->send.n_mirrors = c->n_servers;
        c->send.ca_file = c->ca_file;
        if (c->deadline_ms)
                c->send.deadline_ms = c->deadline_ms;
        return AGENT_EXIT_OK;
}

/* libcurl, then the spool (signed with the device keys) through the context. Returns
 * AGENT_EXIT_OK, curl_exit_code when libcurl cannot start, or AGENT_EXIT_REPORT. */
static int report_command_open(struct report_command *c, int curl_exit_code)
{
        int r;

        r = fetch_global_init();
        if (r < 0) {
                log_error_errno(r, "Failed to initialize libcurl: %m");
                return curl_exit_code;
        }
        c->curl = true;
        r = context_spool(&c->ctx, c->spool_dir, c->n_servers > 0 ? &c->send : NULL, true,
                          &c->spool);
        if (r < 0) {
                log_error_errno(r, "%s", c->ctx.error);
                return AGENT_EXIT_REPORT;
        }
        c->spool_dir = report_spool_dir(c->spool);
        return AGENT_EXIT_OK;
}

static void report_command_done(struct report_command *c)
{
        c->spool = NULL;
        c->key = NULL;
        c->config = NULL;
        context_done(&c->ctx); /* closes the spool before libcurl goes */
        if (c->curl)
                fetch_global_cleanup();
        c->curl = false;
}

static const char *plural(unsigned n)
{
        return n == 1 ? "" : "s";
}

/* One option of report's own. Returns 0, or AGENT_EXIT_USAGE's negation. */
static int parse_report_option(struct report *report, int opt, const char *arg)
{
        int r;

        switch (opt) {
        case ARG_PHASE:
                r = report_phase_from_string(arg);
                if (r < 0) {
                        log_error("Unknown --phase '%s'. Run 'nixprov-agent report "
                                  "--help' for the list.",
                                  arg);
                        return -AGENT_EXIT_USAGE;
                }
                report->phase = (enum report_phase)r;
                return 0;
        case ARG_STATUS:
                r = report_status_from_string(arg);
                if (r < 0) {
                        log_error("Unknown --status '%s': expected started, progress, ok "
                                  "or failed.",
                                  arg);
                        return -AGENT_EXIT_USAGE;
                }
                report->status = (enum report_status)r;
                return 0;
        case ARG_SERIAL:
                if (parse_u64(arg, &report->serial) < 0 || report->serial > (uint64_t)INT64_MAX) {
                        log_error("Invalid --serial '%s': expected a number.", arg);
                        return -AGENT_EXIT_USAGE;
                }
                report->has_serial = true;
                return 0;
        case ARG_MESSAGE:
                report->message = arg;
                return 0;
        case ARG_ERROR:
                report->error = arg;
                return 0;
        default:
                show_report_help(stderr);
                return -AGENT_EXIT_USAGE;
        }
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_report_args(int argc, char **argv, struct report_command *c, struct report *report)
{
        static const struct option options[] = {
            REPORT_COMMAND_LONG_OPTIONS,
            {"phase", required_argument, NULL, ARG_PHASE},
            {"status", required_argument, NULL, ARG_STATUS},
            {"serial", required_argument, NULL, ARG_SERIAL},
            {"message", required_argument, NULL, ARG_MESSAGE},
            {"error", required_argument, NULL, ARG_ERROR},
            {},
        };
        bool have_phase = false, have_status = false;
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, REPORT_COMMAND_SHORT_OPTIONS, options, NULL)) >= 0) {
                r = parse_common_option(c, opt, optarg);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (opt == 'h') {
                        show_report_help(stdout);
                        return -AGENT_EXIT_OK;
                }
                r = parse_report_option(report, opt, optarg);
                if (r < 0)
                        return r;
                have_phase = have_phase || opt == ARG_PHASE;
                have_status = have_status || opt == ARG_STATUS;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent report --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        if (!have_phase || !have_status) {
                log_error("Both --phase and --status are required.");
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

/* After the report is spooled: what became of the delivery attempt. */
static void print_delivery(const struct report_command *c)
{
        const struct report_stats *stats = report_stats(c->spool);
        unsigned pending = 0;

        if (report_pending(c->spool, &pending) < 0)
                pending = 0;
        if (c->n_servers == 0)
                printf("Not sent: no --server given; 'nixprov-agent flush' delivers it "
                       "(%u pending).\n",
                       pending);
        else if (stats->send_failures > 0) {
                const struct fetch_error *e = report_last_error(c->spool);

                log_warning("Could not deliver reports now: %s: %s. %u report%s wait%s in %s "
                            "for the next flush.",
                            e->url[0] ? e->url : "(no URL)", e->message, pending, plural(pending),
                            pending == 1 ? "s" : "", c->spool_dir);
        } else
                printf("Delivered %u report%s; %u pending.\n", stats->sent, plural(stats->sent),
                       pending);
        if (stats->bad > 0)
                printf("Moved %u report%s the server refused for good to %s/bad/.\n", stats->bad,
                       plural(stats->bad), c->spool_dir);
}

int cmd_report(int argc, char **argv)
{
        struct report_command c = {};
        struct report report = {};
        uint64_t seq;
        int r;

        context_init(&c.ctx);
        r = parse_report_args(argc, argv, &c, &report);
        if (r <= 0)
                return -r;
        r = report_command_prepare(&c);
        if (r == AGENT_EXIT_OK)
                r = report_command_open(&c, AGENT_EXIT_REPORT);
        if (r != AGENT_EXIT_OK)
                goto out;
        report_set_emit_deadline(c.spool, c.deadline_ms);

        r = report_emit(c.spool, &report, &seq);
        report_log_events(c.spool);
        if (r < 0) {
                log_error_errno(r, "Failed to spool the report in %s: %m", c.spool_dir);
                r = AGENT_EXIT_REPORT;
                goto out;
        }
        printf("Spooled report %" PRIu64 " (%s %s) in %s.\n", seq,
               report_phase_to_string(report.phase), report_status_to_string(report.status),
               c.spool_dir);
        print_delivery(&c);
        r = AGENT_EXIT_OK;
out:
        report_command_done(&c);
        return r;
}

/* Enrolls once, without waiting; logs what went wrong. */
static int enroll(struct report_command *c, enum enroll_state *ret_state)
{
        const struct identity *id;
        char error[CONTEXT_ERROR_MAX];
        bool unreachable;
        int r;

        r = context_identity(&c->ctx, &id);
        if (r < 0)
                return log_error_errno(r, "%s", c->ctx.error);
        r = enroll_device(c->config->enroll_token_file, c->ctx.root, id, c->key, &c->send, 0,
                          ret_state, &unreachable, error, sizeof(error));
        if (r < 0)
                log_error("%s", error);
        return r;
}

/* Returns 1 to go on, or an exit code's negation. */
static int parse_flush_args(int argc, char **argv, struct report_command *c)
{
        static const struct option options[] = {
            REPORT_COMMAND_LONG_OPTIONS,
            {},
        };
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, REPORT_COMMAND_SHORT_OPTIONS, options, NULL)) >= 0) {
                r = parse_common_option(c, opt, optarg);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (opt == 'h') {
                        show_flush_help(stdout);
                        return -AGENT_EXIT_OK;
                }
                show_flush_help(stderr);
                return -AGENT_EXIT_USAGE;
        }
        if (optind != argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov-agent flush --help'.",
                          argv[optind]);
                return -AGENT_EXIT_USAGE;
        }
        return 1;
}

/* Enrolls, delivers the spool, prints what became of it. Returns the exit code. */
static int flush_spool(struct report_command *c)
{
        const struct fetch_error *e;
        const struct report_stats *stats;
        unsigned sent = 0, pending = 0;
        uint64_t started_ms, elapsed_ms;
        enum enroll_state state;
        int r;

        /* A device provisioned offline was never enrolled: the server takes the reports of an
         * enrolled device only, pending ones included. Enrolling and sending share --deadline. */
        started_ms = monotonic_ms();
        if (enroll(c, &state) == 0 && state != ENROLL_APPROVED && state != ENROLL_NO_SERVER)
                log_warning("The server answers that this device is %s%s.",
                            enroll_state_to_string(state),
                            state == ENROLL_REVOKED ? ": it keeps refusing its reports" : "");
        elapsed_ms = monotonic_ms() - started_ms;
        r = report_flush(c->spool, elapsed_ms < c->deadline_ms ? c->deadline_ms - elapsed_ms : 1,
                         &sent, &pending);
        report_log_events(c->spool);
        stats = report_stats(c->spool);
        e = report_last_error(c->spool);
        printf("Sent %u report%s (%u already known to the server); %u pending in %s.\n", sent,
               plural(sent), stats->duplicates, pending, c->spool_dir);
        if (stats->bad > 0)
                printf("Moved %u unusable report%s to %s/bad/.\n", stats->bad, plural(stats->bad),
                       c->spool_dir);
        if (r < 0 && e->message[0] != '\0') { /* a send failed, not the spool */
                log_error("Failed to deliver the spooled reports: %s: %s%s. %u report%s remain%s "
                          "in %s for a later flush.",
                          e->url[0] ? e->url : "(no URL)", e->message,
                          e->deadline_reached ? " (deadline reached)" : "", pending,
                          plural(pending), pending == 1 ? "s" : "", c->spool_dir);
                return AGENT_EXIT_FETCH;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to deliver the spooled reports from %s: %m",
                                c->spool_dir);
                return AGENT_EXIT_REPORT;
        }
        return AGENT_EXIT_OK;
}

int cmd_flush(int argc, char **argv)
{
        struct report_command c = {.deadline_ms = REPORT_FLUSH_DEADLINE_S_DEFAULT * 1000};
        int r;

        context_init(&c.ctx);
        r = parse_flush_args(argc, argv, &c);
        if (r <= 0)
                return -r;
        r = report_command_prepare(&c);
        if (r == AGENT_EXIT_OK && c.n_servers == 0) {
                log_error("No server: give --server URL, or set server.urls in the agent "
                          "configuration.");
                r = AGENT_EXIT_USAGE;
        }
        if (r == AGENT_EXIT_OK)
                r = report_command_open(&c, AGENT_EXIT_FETCH);
        if (r == AGENT_EXIT_OK)
                r = flush_spool(&c);
        report_command_done(&c);
        return r;
}
