/* SPDX-License-Identifier: MIT */
/* nixprov fleet: what the server knows of the fleet, or of one machine; and the operator's
 * decisions (approve, revoke, reset), written straight into the server's database. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "commands.h"
#include "fetch.h"
#include "log.h"
#include "machine_id.h"
#include "operator_token.h"
#include "store.h"
#include "util.h"

#define FLEET_SERVER_DEFAULT "http://127.0.0.1:8470"
#define FLEET_RESPONSE_MAX (64 * 1024 * 1024)
#define FLEET_CONNECT_TIMEOUT_MS UINT64_C(10000)
#define FLEET_TIMEOUT_MS UINT64_C(60000) /* for the whole transfer */
/* The server's URL, leaving room for the path under FETCH_URL_MAX. */
#define FLEET_URL_MAX (FETCH_URL_MAX - 64)
#define FLEET_PAGE_LIMIT 1000 /* asked for; the server may answer fewer */
#define FLEET_CURSOR_MAX 64
#define FLEET_PAGES_MAX 10000

static void fleet_help(void)
{
        printf("Usage: nixprov fleet [OPTIONS...] [MACHINE_ID]\n"
               "       nixprov fleet approve|revoke|reset MACHINE_ID... --db FILE\n\n"
               "Shows the machines the server knows, with their enrollment state and latest\n"
               "report; with MACHINE_ID, that machine's reports, one line each. A '!' after the\n"
               "state marks a machine that another device key tried to enroll as.\n\n"
               "Options:\n"
               "  --server URL  the nixprov server (default: %s)\n"
               "  --json        print the server's answer as JSON (every page joined; non-ASCII\n"
               "                characters escaped)\n"
               "  --limit N     machines or reports asked for per page (default: %d); every\n"
               "                page is fetched\n"
               "  --token-file FILE  the operator token of nixprov serve (its\n"
               "                --operator-token-file; mode 0600 or stricter)\n"
               "  --data DIR, --db FILE  on the server host: the token is %s\n"
               "                beside the database (serve's default)\n"
               "  -h, --help    show this help\n\n"
               "Decisions, written into the server's database directly (run them on the server\n"
               "host, as the user that owns the database; nothing goes over HTTP):\n"
               "  approve  a pending or revoked machine may fetch its profile\n"
               "  revoke   an enrolled machine gets no profile and its reports are refused\n"
               "  reset    forget the machine's device keys (its reports are kept): its next\n"
               "           enrollment is taken as new, e.g. after a reinstall\n"
               "  --db FILE     the database of nixprov serve (its --db, or DATA/nixprov.db)\n"
               "  --data DIR    the same as --db DIR/nixprov.db\n\n"
               "Exit codes: 0 success, 1 the server cannot be reached or answered an error, or\n"
               "a decision could not be made (an unknown or unenrolled machine, a database that\n"
               "cannot be used: the other machines named are still done), 2 usage error.\n",
               FLEET_SERVER_DEFAULT, FLEET_PAGE_LIMIT, OPERATOR_TOKEN_FILE);
}

/* Says what the server answered when it did not answer 2xx: its "error" member, when the
 * start of the answer holds one. */
static int fleet_log_answer(const struct fetch_error *e, const char *url)
{
        json_t *json = json_loads(e->answer, 0, NULL);
        const char *message = json_string_value(json_object_get(json, "error"));

        log_error("The server answered %ld for %s: %s", e->http_status, url,
                  message ?: "(no error message)");
        json_decref(json);
        return -EPROTO;
}

/* GETs path from server (url is the two joined, for messages) with the shared HTTP client: one
 * attempt, no redirects, a bounded answer. Returns 0 with the body of a 2xx answer; logs and
 * returns a negative errno otherwise. */
static int fleet_get(const char *server, const char *path, const char *url,
                     const char *authorization, char **ret_body, size_t *ret_size)
{
        const char *headers[] = {authorization, NULL};
        char *mirrors[] = {(char *)server};
        struct fetch_options o;
        struct fetch_error e;
        int r;

        fetch_options_init(&o);
        o.mirrors = mirrors;
        o.n_mirrors = 1;
        o.connect_timeout_ms = FLEET_CONNECT_TIMEOUT_MS;
        o.deadline_ms = FLEET_TIMEOUT_MS;
        o.max_size = FLEET_RESPONSE_MAX;
        o.max_attempts = 1;
        o.no_redirects = true;
        o.user_agent = "nixprov/" NIXPROV_VERSION;
        o.headers = headers;
        r = fetch_get(&o, path, ret_body, ret_size, &e);
        if (r >= 0)
                return 0;
        if (e.http_status != 0 && (e.http_status < 200 || e.http_status > 299))
                return fleet_log_answer(&e, url);
        if (r == -E2BIG && e.attempts > 0)
                return log_error_errno(r, "Failed to fetch %s: the answer is larger than %d bytes.",
                                       url, FLEET_RESPONSE_MAX);
        return log_error_errno(r, "Failed to reach the server at %s: %s", url, e.message);
}

/* Prints a string from the server with control characters, C1 controls, bidi overrides and
 * invalid UTF-8 replaced (text_sanitize()): whatever a device put in its report must not drive
 * or fool the operator's terminal. */
static void fleet_print_field(const char *s, int width)
{
        char clean[256];

        if (!s)
                s = "-";
        (void)text_sanitize(s, strlen(s), clean, sizeof(clean));
        printf("%-*s", width, clean);
}

static const char *fleet_integer(json_t *v, char buf[static 32])
{
        if (!json_is_integer(v))
                return NULL;
        snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
        return buf;
}

static const char *fleet_time(json_t *v, char buf[static RFC3339_MAX])
{
        if (!json_is_integer(v))
                return NULL;
        return format_rfc3339_utc(json_integer_value(v), buf);
}

/* A hostname in 20 columns: a longer one is cut with "~". */
static void fleet_print_hostname(const char *hostname)
{
        char cut[21];

        if (hostname && strlen(hostname) > 20) {
                snprintf(cut, sizeof(cut), "%.19s~", hostname);
                hostname = cut;
        }
        fleet_print_field(hostname, 20);
}

/* RUNS and UPDATE: the serial of the last update done, and the last one tried with how it
 * ended ("5 rolled-back"). */
static void fleet_print_update(json_t *update)
{
        char running[32], serial[32], text[64];
        const char *outcome = json_string_value(json_object_get(update, "outcome"));

        fleet_print_field(fleet_integer(json_object_get(update, "running_serial"), running), 6);
        printf(" ");
        snprintf(text, sizeof(text), "%s %.40s",
                 fleet_integer(json_object_get(update, "serial"), serial) ?: "-", outcome ?: "");
        fleet_print_field(outcome ? text : NULL, 22);
}

/* The last update tried, how it ended and why. */
static void fleet_print_machine_update(json_t *update)
{
        char serial[32];
        const char *outcome = json_string_value(json_object_get(update, "outcome"));
        const char *error = json_string_value(json_object_get(update, "error"));

        if (!outcome)
                return;
        printf("Last update: serial ");
        fleet_print_field(fleet_integer(json_object_get(update, "serial"), serial), 0);
        printf(" ");
        fleet_print_field(outcome, 0);
        if (error) {
                printf(": ");
                fleet_print_field(error, 0);
        }
        printf("\n");
}

static int fleet_print_machines(json_t *machines)
{
        size_t i, conflicts = 0;
        json_t *m;

        if (!json_is_array(machines))
                return log_error_errno(-EBADMSG, "The server's answer is not a list of machines.");
        if (json_array_size(machines) == 0) {
                printf("No machines.\n");
                return 0;
        }
        printf("%-32s  %-11s %-20s %-8s %-10s %-9s %-6s %-22s %-8s %s\n", "MACHINE", "STATE",
               "HOSTNAME", "SERIAL", "PHASE", "STATUS", "RUNS", "UPDATE", "REPORTS", "LAST SEEN");
        json_array_foreach(machines, i, m) {
                char serial[32], reports[32], seen[RFC3339_MAX], state[32];
                const char *s = json_string_value(json_object_get(m, "state"));
                bool conflict = json_is_integer(json_object_get(m, "conflict_at"));

                snprintf(state, sizeof(state), "%.20s%s", s ?: "-", conflict ? "!" : "");
                conflicts += conflict;
                fleet_print_field(json_string_value(json_object_get(m, "machine_id")), 32);
                printf("  ");
                fleet_print_field(state, 11);
                printf(" ");
                fleet_print_hostname(json_string_value(json_object_get(m, "hostname")));
                printf(" ");
                fleet_print_field(fleet_integer(json_object_get(m, "serial"), serial), 8);
                printf(" ");
                fleet_print_field(json_string_value(json_object_get(m, "phase")), 10);
                printf(" ");
                fleet_print_field(json_string_value(json_object_get(m, "status")), 9);
                printf(" ");
                fleet_print_update(json_object_get(m, "update"));
                printf(" ");
                fleet_print_field(fleet_integer(json_object_get(m, "reports"), reports), 8);
                printf(" ");
                fleet_print_field(fleet_time(json_object_get(m, "last_seen"), seen), 0);
                printf("\n");
        }
        if (conflicts > 0)
                printf("\n! another device key tried to enroll under this machine id (a cloned or\n"
                       "  reinstalled disk?): 'nixprov fleet reset ID' lets the new key enroll.\n");
        return 0;
}

static int fleet_print_machine(json_t *machine)
{
        char serial[32], total[32], seen[RFC3339_MAX];
        json_t *reports = json_object_get(machine, "reports"), *r;
        size_t i;

        if (!json_is_object(machine) || !json_is_array(reports))
                return log_error_errno(-EBADMSG, "The server's answer is not a machine.");

        printf("Machine ");
        fleet_print_field(json_string_value(json_object_get(machine, "machine_id")), 0);
        printf(": state ");
        fleet_print_field(json_string_value(json_object_get(machine, "state")), 0);
        printf(", hostname ");
        fleet_print_field(json_string_value(json_object_get(machine, "hostname")), 0);
        printf(", serial ");
        fleet_print_field(fleet_integer(json_object_get(machine, "serial"), serial), 0);
        printf(", ");
        fleet_print_field(fleet_integer(json_object_get(machine, "reports_total"), total), 0);
        printf(" reports");
        if (json_integer_value(json_object_get(machine, "reports_trimmed")) > 0)
                printf(" (%lld older trimmed by the server's quota)",
                       (long long)json_integer_value(json_object_get(machine, "reports_trimmed")));
        printf(", last seen ");
        fleet_print_field(fleet_time(json_object_get(machine, "last_seen"), seen), 0);
        printf("\n");
        fleet_print_machine_update(json_object_get(machine, "update"));
        if (json_is_integer(json_object_get(machine, "conflict_at"))) {
                char when[RFC3339_MAX];

                printf("Another device key tried to enroll under this id at ");
                fleet_print_field(fleet_time(json_object_get(machine, "conflict_at"), when), 0);
                printf(" (a cloned or reinstalled disk?): 'nixprov fleet reset ");
                fleet_print_field(json_string_value(json_object_get(machine, "machine_id")), 0);
                printf("' lets it enroll.\n");
        }

        printf("%-8s %-20s %-10s %-9s %s\n", "SEQ", "TIME", "PHASE", "STATUS", "MESSAGE");
        json_array_foreach(reports, i, r) {
                char seq[32], when[RFC3339_MAX];
                const char *message = json_string_value(json_object_get(r, "error"));

                if (!message)
                        message = json_string_value(json_object_get(r, "message"));
                fleet_print_field(fleet_integer(json_object_get(r, "seq"), seq), 8);
                printf(" ");
                fleet_print_field(fleet_time(json_object_get(r, "time"), when), 20);
                printf(" ");
                fleet_print_field(json_string_value(json_object_get(r, "phase")), 10);
                printf(" ");
                fleet_print_field(json_string_value(json_object_get(r, "status")), message ? 9 : 0);
                if (message) {
                        printf(" ");
                        fleet_print_field(message, 0);
                }
                printf("\n");
        }
        return 0;
}

static const struct {
        const char *verb;
        enum store_decision decision;
} fleet_decisions[] = {
    {"approve", STORE_DECISION_APPROVE},
    {"revoke", STORE_DECISION_REVOKE},
    {"reset", STORE_DECISION_RESET},
};

/* Makes one decision about one machine, saying what it did. Returns 0 or a negative errno,
 * logged. */
static int fleet_decide_one(struct store *store, const char *machine_id,
                            enum store_decision decision)
{
        enum store_state previous;
        int r;

        r = store_decide(store, machine_id, decision, (int64_t)time(NULL), &previous);
        if ((r == -ENOENT || r == -ENOKEY) && decision == STORE_DECISION_APPROVE)
                return log_error_errno(r,
                                       "Machine %s has not enrolled; list it under "
                                       "approve.machine-ids in the enrollment policy to approve "
                                       "it in advance.",
                                       machine_id);
        if ((r == -ENOENT || r == -ENOKEY) && decision == STORE_DECISION_REVOKE)
                return log_error_errno(r,
                                       "Machine %s has not enrolled: there is no key to revoke. "
                                       "An enrollment policy that does not list it leaves it "
                                       "pending.",
                                       machine_id);
        if (r == -ENOENT)
                return log_error_errno(r, "Machine %s is unknown to this database.", machine_id);
        if (r == -EBUSY)
                return log_error_errno(r, "The database is busy; try again.");
        if (r < 0)
                return log_error_errno(r, "Failed to change machine %s: %m", machine_id);

        switch (decision) {
        case STORE_DECISION_APPROVE:
                if (previous == STORE_STATE_APPROVED)
                        printf("Machine %s is already approved.\n", machine_id);
                else
                        printf("Approved machine %s (was %s): it may fetch its profile.\n",
                               machine_id, store_state_to_string(previous));
                break;
        case STORE_DECISION_REVOKE:
                if (previous == STORE_STATE_REVOKED)
                        printf("Machine %s is already revoked.\n", machine_id);
                else
                        printf("Revoked machine %s (was %s): no profile, and its reports are "
                               "refused.\n",
                               machine_id, store_state_to_string(previous));
                break;
        case STORE_DECISION_RESET:
                printf("Reset machine %s (was %s): its keys are forgotten and its reports kept; "
                       "its next enrollment is taken as new.\n",
                       machine_id, store_state_to_string(previous));
                break;
        }
        return 0;
}

static int fleet_decide(int argc, char **argv, enum store_decision decision)
{
        enum { ARG_DB = 0x100, ARG_DATA };
        static const struct option options[] = {
            {"db", required_argument, NULL, ARG_DB},
            {"data", required_argument, NULL, ARG_DATA},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(store_freep) struct store *store = NULL;
        _cleanup_free_ char *db_from_data = NULL;
        const char *db = NULL, *verb = argv[0];
        int c, r, failed = 0;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_DB:
                        db = optarg;
                        break;
                case ARG_DATA:
                        free(db_from_data);
                        if (asprintf(&db_from_data, "%s/nixprov.db", optarg) < 0) {
                                db_from_data = NULL;
                                log_oom();
                                return EXIT_FAIL;
                        }
                        db = db_from_data;
                        break;
                case 'h':
                        fleet_help();
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (!db) {
                log_error("nixprov fleet %s needs the server's database: --db FILE or --data DIR.",
                          verb);
                return EXIT_USAGE;
        }
        if (optind >= argc) {
                log_error("nixprov fleet %s needs at least one MACHINE_ID.", verb);
                return EXIT_USAGE;
        }
        for (int i = optind; i < argc; i++)
                if (!machine_id_is_canonical(argv[i])) {
                        log_error("Invalid machine id '%s': expected 32 lowercase hexadecimal "
                                  "digits.",
                                  argv[i]);
                        return EXIT_USAGE;
                }
        /* store_open() would make a new, empty database: a typo must not look like an
         * unknown machine. */
        if (access(db, F_OK) < 0) {
                log_error_errno(-errno, "Cannot use database %s: %m", db);
                return EXIT_FAIL;
        }
        r = store_open(db, &store);
        if (r == -EPROTO) {
                log_error("Database %s was written by a newer nixprov (schema above %d).", db,
                          STORE_SCHEMA_VERSION);
                return EXIT_FAIL;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to open database %s: %m", db);
                return EXIT_FAIL;
        }
        for (int i = optind; i < argc; i++)
                if (fleet_decide_one(store, argv[i], decision) < 0)
                        failed++;
        if (fflush(stdout) != 0)
                return EXIT_FAIL;
        return failed ? EXIT_FAIL : EXIT_OK;
}

struct fleet_options {
        const char *machine_id; /* NULL: every machine */
        bool json_output;
        uint64_t limit;            /* per page */
        char *url;                 /* SERVER/v1/machines[/ID], owned */
        char *token_path;          /* owned */
        const char *authorization; /* the header line (cmd_fleet's) */
        size_t server_size;        /* url's first server_size bytes are the server's URL */
};

/* The operator token's file: arg itself (is_file), else operator.token in the directory of the
 * database arg (is_db) or in the data directory arg. NULL when out of memory. */
static char *fleet_token_path(const char *arg, bool is_file, bool is_db)
{
        _cleanup_free_ char *copy = NULL;
        char *path;

        if (is_file)
                return strdup(arg);
        copy = strdup(arg);
        if (!copy ||
            asprintf(&path, "%s/%s", is_db ? dirname(copy) : copy, OPERATOR_TOKEN_FILE) < 0)
                return NULL;
        return path;
}

/* Returns 1 to fetch (ret->url is the caller's to free), 0 after --help, -EINVAL for a usage
 * error or -ENOMEM (logged). */
static int fleet_parse_limit(const char *arg, uint64_t *ret)
{
        if (parse_u64(arg, ret) < 0 || *ret == 0 || *ret > FLEET_PAGE_LIMIT) {
                log_error("--limit must be a number from 1 to %d, not '%s'.", FLEET_PAGE_LIMIT,
                          arg);
                return -EINVAL;
        }
        return 0;
}

static int fleet_parse_argv(int argc, char **argv, struct fleet_options *ret)
{
        enum { ARG_SERVER = 0x100, ARG_JSON, ARG_LIMIT, ARG_TOKEN_FILE, ARG_DB, ARG_DATA };
        static const struct option options[] = {
            {"server", required_argument, NULL, ARG_SERVER},
            {"json", no_argument, NULL, ARG_JSON},
            {"limit", required_argument, NULL, ARG_LIMIT},
            {"token-file", required_argument, NULL, ARG_TOKEN_FILE},
            {"db", required_argument, NULL, ARG_DB},
            {"data", required_argument, NULL, ARG_DATA},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        const char *server = FLEET_SERVER_DEFAULT;
        _cleanup_free_ char *token_path = NULL;
        struct fleet_options o = {.limit = FLEET_PAGE_LIMIT};
        size_t server_size;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SERVER:
                        server = optarg;
                        break;
                case ARG_JSON:
                        o.json_output = true;
                        break;
                case ARG_LIMIT:
                        if (fleet_parse_limit(optarg, &o.limit) < 0)
                                return -EINVAL;
                        break;
                case ARG_TOKEN_FILE:
                case ARG_DB:
                case ARG_DATA:
                        free(token_path);
                        token_path = fleet_token_path(optarg, c == ARG_TOKEN_FILE, c == ARG_DB);
                        if (!token_path)
                                return log_error_errno(-ENOMEM, "Out of memory.");
                        break;
                case 'h':
                        fleet_help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                o.machine_id = argv[optind++];
        if (optind < argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov fleet --help'.", argv[optind]);
                return -EINVAL;
        }
        if (!token_path) {
                log_error("nixprov fleet needs the operator token: --token-file FILE, or --data "
                          "DIR or --db FILE on the server host.");
                return -EINVAL;
        }
        if (o.machine_id && !machine_id_is_canonical(o.machine_id)) {
                log_error("Invalid machine id '%s': expected 32 lowercase hexadecimal digits.",
                          o.machine_id);
                return -EINVAL;
        }
        server_size = strlen(server);
        while (server_size > 0 && server[server_size - 1] == '/')
                server_size--;
        if (server_size == 0 || server_size > FLEET_URL_MAX ||
            (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0)) {
                log_error("--server must be an http:// or https:// URL, not '%s'.", server);
                return -EINVAL;
        }
        if (asprintf(&o.url, "%.*s/v1/machines%s%s", (int)server_size, server,
                     o.machine_id ? "/" : "", o.machine_id ?: "") < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        o.server_size = server_size;
        o.token_path = TAKE_PTR(token_path);
        *ret = o;
        return 1;
}

/* The "next" cursor of a page into cursor (size FLEET_CURSOR_MAX): "" for the last page, or
 * -EBADMSG (logged) for one that is not a cursor or does not move on from the one before. */
static int fleet_next_cursor(json_t *page, const char *url, char cursor[static FLEET_CURSOR_MAX])
{
        json_t *next = json_object_get(page, "next");
        const char *s = json_string_value(next);

        if (!next || json_is_null(next)) {
                cursor[0] = '\0';
                return 0;
        }
        if (!s || !string_is_safe(s, FLEET_CURSOR_MAX - 1, NULL) || streq(s, cursor))
                return log_error_errno(-EBADMSG,
                                       "The server's answer from %s has an invalid "
                                       "\"next\" cursor.",
                                       url);
        strcpy(cursor, s);
        return 0;
}

/* GETs one page (after cursor, "" for the first) and parses it. Logs; returns 0 or -errno. */
static int fleet_get_page(const struct fleet_options *o, const char *server, const char *cursor,
                          json_t **ret_page)
{
        _cleanup_free_ char *path = NULL, *body = NULL;
        json_error_t error;
        size_t size;
        int r;

        if (asprintf(&path, "%s?limit=%llu%s%s", o->url + o->server_size,
                     (unsigned long long)o->limit, *cursor ? "&cursor=" : "", cursor) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        r = fleet_get(server, path, o->url, o->authorization, &body, &size);
        if (r < 0)
                return r;
        *ret_page = json_loadb(body, size, 0, &error);
        if (!*ret_page)
                return log_error_errno(-EBADMSG, "The server's answer from %s is not JSON: %s",
                                       o->url, error.text);
        return 0;
}

/* Adds a page's items to *all: the first page of a machine is the machine; the machines of
 * every page and the reports of the later ones are appended. */
static int fleet_join_page(const struct fleet_options *o, json_t **all, json_t *page, json_t *items)
{
        if (!*all && o->machine_id) {
                *all = json_incref(page);
                return 0;
        }
        if (!*all)
                *all = json_array();
        if (!*all ||
            json_array_extend(o->machine_id ? json_object_get(*all, "reports") : *all, items) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        return 0;
}

/* Every page of the answer, joined: the machines as one array, or the machine with all its
 * reports. Logs; returns 0 or -errno. */
static int fleet_get_all(const struct fleet_options *o, const char *server, json_t **ret_all)
{
        char cursor[FLEET_CURSOR_MAX] = "";
        json_t *all = NULL, *page = NULL, *items;
        size_t pages = 0;
        int r;

        do {
                /* A server whose cursors go round in circles is not followed for ever. */
                if (++pages > FLEET_PAGES_MAX) {
                        r = log_error_errno(-E2BIG,
                                            "The server's answer from %s has more than %d "
                                            "pages.",
                                            o->url, FLEET_PAGES_MAX);
                        break;
                }
                r = fleet_get_page(o, server, cursor, &page);
                if (r < 0)
                        break;
                items = json_object_get(page, o->machine_id ? "reports" : "machines");
                r = -EBADMSG;
                if (!json_is_array(items)) {
                        log_error("The server's answer from %s is not a list of %s.", o->url,
                                  o->machine_id ? "reports" : "machines");
                        break;
                }
                r = fleet_join_page(o, &all, page, items);
                if (r < 0)
                        break;
                r = fleet_next_cursor(page, o->url, cursor);
                json_decref(page);
                page = NULL;
        } while (r >= 0 && *cursor);
        json_decref(page);
        if (r < 0) {
                json_decref(all);
                return r;
        }
        if (o->machine_id) {
                (void)json_object_set_new(all, "truncated", json_false());
                (void)json_object_set_new(all, "next", json_null());
        }
        *ret_all = all;
        return 0;
}

/* Prints the answer: as JSON (--json; every non-ASCII character escaped), or as a table. Logs;
 * returns 0 or -errno. */
static int fleet_show(const struct fleet_options *o, json_t *json)
{
        int r;

        if (o->json_output) {
                r = json_dumpf(json, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
                putchar('\n');
                return r == 0 && fflush(stdout) == 0 ? 0 : -EIO;
        }
        r = o->machine_id ? fleet_print_machine(json) : fleet_print_machines(json);
        if (r < 0)
                return r;
        return fflush(stdout) == 0 ? 0 : -EIO;
}

/* "Authorization: Bearer TOKEN" from the token file, in sodium_malloc() memory (sodium_free()
 * wipes it). Logs; returns 0 or a negative errno. */
static int fleet_authorization(const char *path, char **ret_header)
{
        static const char prefix[] = "Authorization: Bearer ";
        size_t size;
        char *token, *header;
        int r;

        r = operator_token_read(path, &token);
        if (r == -EPERM)
                return log_error_errno(r,
                                       "Operator token file %s may be read by others: it must "
                                       "be mode 0600 or stricter.",
                                       path);
        if (r == -EBADMSG)
                return log_error_errno(r, "Operator token file %s is not a token.", path);
        if (r < 0)
                return log_error_errno(r, "Cannot read operator token file %s: %m", path);
        size = strlen(prefix) + strlen(token) + 1;
        header = sodium_malloc(size);
        if (header)
                (void)snprintf(header, size, "%s%s", prefix, token);
        sodium_free(token);
        if (!header)
                return log_error_errno(-ENOMEM, "Out of memory.");
        *ret_header = header;
        return 0;
}

int cmd_fleet(int argc, char **argv)
{
        _cleanup_free_ char *url = NULL, *server = NULL, *token_path = NULL;
        _cleanup_(operator_token_freep) char *authorization = NULL;
        struct fleet_options o = {};
        json_t *all = NULL;
        int r;

        if (argc >= 2)
                for (size_t i = 0; i < ELEMENTSOF(fleet_decisions); i++)
                        if (streq(argv[1], fleet_decisions[i].verb))
                                return fleet_decide(argc - 1, argv + 1,
                                                    fleet_decisions[i].decision);

        r = fleet_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r == 0 ? EXIT_OK : r == -ENOMEM ? EXIT_FAIL : EXIT_USAGE;
        url = o.url;
        token_path = o.token_path;
        if (fleet_authorization(token_path, &authorization) < 0)
                return EXIT_FAIL;

        if (fetch_global_init() < 0) {
                log_error("Failed to initialize the HTTP client.");
                return EXIT_FAIL;
        }
        server = strndup(url, o.server_size);
        if (!server) {
                log_error("Out of memory.");
                fetch_global_cleanup();
                return EXIT_FAIL;
        }
        o.authorization = authorization;
        r = fleet_get_all(&o, server, &all);
        fetch_global_cleanup();
        if (r < 0)
                return EXIT_FAIL;
        r = fleet_show(&o, all);
        json_decref(all);
        return r < 0 ? EXIT_FAIL : EXIT_OK;
}
