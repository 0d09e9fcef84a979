/* SPDX-License-Identifier: MIT */
/* nixprov serve: the provisioning server. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <sodium.h>

#include "commands.h"
#include "enrollment.h"
#include "fileio.h"
#include "forwarded.h"
#include "http.h"
#include "log.h"
#include "operator_token.h"
#include "proof.h"
#include "routes.h"
#include "service.h"
#include "store.h"
#include "util.h"

#define SERVE_LISTEN_DEFAULT "127.0.0.1:8470"
#define SERVE_DB_NAME "nixprov.db"
#define SERVE_SPARE_FDS 64 /* open files besides the connections: database, listener, logs */

static void serve_help(void)
{
        printf(
            "Usage: nixprov serve --data DIR [OPTIONS...]\n\n"
            "Serves signed profiles to machines and stores the reports they send.\n\n"
            "Options:\n"
            "  --listen ADDR:PORT  address to listen on; [ADDR]:PORT for IPv6, port 0 lets\n"
            "                      the kernel choose (default: %s)\n"
            "  --data DIR          profiles: DIR/machines/ID.yaml, DIR/groups/NAME.yaml,\n"
            "                      DIR/default.yaml, each with its .minisig (required)\n"
            "  --db FILE           the SQLite database of machines and reports\n"
            "                      (default: DIR/%s)\n"
            "  --port-file FILE    write the port listened on to FILE once bound\n"
            "  --max-body BYTES    largest request body accepted (default: %d, at most\n"
            "                      %d)\n"
            "  --head-timeout SECONDS  a request head not complete this long after the\n"
            "                      connection opened (or the previous answer) is cut off,\n"
            "                      however slowly it trickles in (default: %d)\n"
            "  --body-timeout SECONDS  the same for a request body, from its head (default: %d)\n"
            "  --max-connections N  open connections in all, besides the held ones\n"
            "                      (default: %d)\n"
            "  --max-connections-per-address N  open connections from one peer address\n"
            "                      other than a --trusted-proxy, 0 for no limit\n"
            "                      (default: %d)\n"
            "  --trusted-proxy ADDR  believe X-Forwarded-For (for logs) only from this peer\n"
            "                      address; repeatable, at most %d times\n"
            "  --enroll-policy FILE  which enrollments are approved without an operator:\n"
            "                      approve: {machine-ids: [...], macs: [...],\n"
            "                      token-files: [...]} (default: none; every enrollment\n"
            "                      waits for 'nixprov fleet approve')\n"
            "  --max-waiters N     profile requests with ?wait= held at once (default: %d,\n"
            "                      0: none); past it one is answered at once, as without a\n"
            "                      wait\n"
            "  --history-reports N  reports kept per machine, the newest (default: %d)\n"
            "  --history-bytes BYTES  bytes of reports kept per machine (default: %lld)\n"
            "  --pending-reports N  reports kept per pending machine (default: %d; 0: none)\n"
            "  --pending-rate N    reports a minute taken from a pending machine, the rest\n"
            "                      answered 429 (default: %d)\n"
            "  --pending-max N     machines pending at once; another enrollment that would\n"
            "                      wait is answered 503 (default: %d)\n"
            "  --operator-token-file FILE  the bearer token the operator endpoints require\n"
            "                      (a file of mode 0600 or stricter; default: %s beside\n"
            "                      the database, made with a random token when missing)\n"
            "  --enroll-window S   how far (seconds) an enrollment's time may be from this\n"
            "                      clock (default: %d)\n"
            "  --proof-window S    how far (seconds) the time of a device's proof on a\n"
            "                      profile request may be from this clock (default: %d)\n"
            "  -v, --verbose       log every request\n"
            "  -h, --help          show this help\n\n"
            "Endpoints: GET /v1/machines/ID/profile[.minisig][?groups=a,b] (approved machines\n"
            "only), POST /v1/enroll, POST /v1/reports (both signed by the device key),\n"
            "GET /healthz; with 'Authorization: Bearer TOKEN' (the operator token):\n"
            "GET /v1/machines, GET /v1/machines/ID, GET /metrics. A profile request with\n"
            "If-None-Match naming the current ETag is answered 304; with ?wait=SECONDS too\n"
            "(at most %d), it is held until a new profile is published for the machine\n"
            "(inotify on DIR) or the wait ends.\n"
            "Stops cleanly on SIGTERM or SIGINT.\n",
            SERVE_LISTEN_DEFAULT, SERVE_DB_NAME, HTTP_MAX_BODY_DEFAULT, HTTP_MAX_BODY_LIMIT,
            HTTP_HEAD_TIMEOUT_DEFAULT, HTTP_BODY_TIMEOUT_DEFAULT, HTTP_MAX_CONNECTIONS_DEFAULT,
            HTTP_MAX_CONNECTIONS_PER_ADDRESS_DEFAULT, HTTP_MAX_TRUSTED_PROXIES,
            HTTP_MAX_WAITERS_DEFAULT, STORE_HISTORY_REPORTS_DEFAULT,
            (long long)STORE_HISTORY_BYTES_DEFAULT, STORE_PENDING_REPORTS_DEFAULT,
            SERVICE_PENDING_RATE_DEFAULT, STORE_PENDING_MACHINES_DEFAULT, OPERATOR_TOKEN_FILE,
            ENROLLMENT_WINDOW_DEFAULT, PROOF_WINDOW_DEFAULT, ROUTES_WAIT_MAX);
}

/* Reads and parses the enrollment policy, logging what is wrong with it. */
static int serve_load_policy(const char *path, struct enrollment_policy **ret)
{
        _cleanup_free_ char *data = NULL;
        struct profile_error error;
        char line[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX + PROFILE_ERROR_MESSAGE_MAX + 32];
        size_t size;
        int r;

        r = read_file_bounded(path, ENROLLMENT_POLICY_MAX_BYTES, &data, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "Enrollment policy %s is larger than %d bytes.", path,
                                       ENROLLMENT_POLICY_MAX_BYTES);
        if (r < 0)
                return log_error_errno(r, "Failed to read enrollment policy %s: %m", path);
        r = enrollment_policy_parse(data, size, path, ret, &error);
        if (r < 0)
                return log_error_errno(r, "%s", profile_error_format(&error, line, sizeof(line)));
        return 0;
}

static int serve_write_port_file(const char *path, uint16_t port)
{
        char text[16];
        int n;

        n = snprintf(text, sizeof(text), "%u\n", (unsigned)port);
        return write_file_atomic(path, text, (size_t)n, 0644, 0);
}

enum {
        ARG_LISTEN = 0x100,
        ARG_DATA,
        ARG_DB,
        ARG_PORT_FILE,
        ARG_MAX_BODY,
        ARG_POLICY,
        ARG_HEAD_TIMEOUT,
        ARG_BODY_TIMEOUT,
        ARG_MAX_CONNECTIONS,
        ARG_MAX_PER_ADDRESS,
        ARG_TRUSTED_PROXY,
        ARG_HISTORY_REPORTS,
        ARG_HISTORY_BYTES,
        ARG_PENDING_REPORTS,
        ARG_PENDING_RATE,
        ARG_PENDING_MAX,
        ARG_TOKEN_FILE,
        ARG_PROOF_WINDOW,
        ARG_ENROLL_WINDOW,
        ARG_MAX_WAITERS,
};

struct serve_options {
        const char *listen_arg;
        const char *data_dir;
        const char *db_path; /* NULL: DATA/nixprov.db */
        const char *port_file;
        const char *policy_path;
        struct http_options http;
        struct store_limits limits;
        int64_t pending_rate;   /* reports a minute */
        const char *token_path; /* NULL: operator.token beside the database */
        uint64_t proof_window;
        uint64_t enroll_window;
        struct http_listen listen;
};

/* A time window in seconds, 0 to PROOF_WINDOW_MAX. Logs; returns 0 or -EINVAL. */
static int serve_parse_window(const char *option, const char *arg, uint64_t *ret)
{
        if (parse_u64(arg, ret) < 0 || *ret > PROOF_WINDOW_MAX) {
                log_error("%s must be a number of seconds from 0 to %d, not '%s'.", option,
                          PROOF_WINDOW_MAX, arg);
                return -EINVAL;
        }
        return 0;
}

/* The options of operator and device authentication: 0, -EINVAL (logged), or -ENOENT for any
 * other option. */
static int serve_parse_auth(int c, const char *arg, struct serve_options *o)
{
        switch (c) {
        case ARG_TOKEN_FILE:
                o->token_path = arg;
                return 0;
        case ARG_PROOF_WINDOW:
                return serve_parse_window("--proof-window", arg, &o->proof_window);
        case ARG_ENROLL_WINDOW:
                return serve_parse_window("--enroll-window", arg, &o->enroll_window);
        default:
                return -ENOENT;
        }
}

/* A number of --NAME from min to INT64_MAX into *ret; logs a usage error. */
static int serve_parse_limit(const char *name, const char *arg, uint64_t min, int64_t *ret)
{
        uint64_t v;

        if (parse_u64(arg, &v) < 0 || v < min || v > INT64_MAX) {
                log_error("--%s must be a number from %llu, not '%s'.", name,
                          (unsigned long long)min, arg);
                return -EINVAL;
        }
        *ret = (int64_t)v;
        return 0;
}

/* The options of the quotas: 0, -EINVAL (logged), or -ENOENT for any other option. */
static int serve_parse_quota(int c, const char *arg, struct serve_options *o)
{
        struct store_limits *limits = &o->limits;

        switch (c) {
        case ARG_PENDING_MAX:
                return serve_parse_limit("pending-max", arg, 0, &limits->pending_machines);
        case ARG_PENDING_RATE:
                return serve_parse_limit("pending-rate", arg, 1, &o->pending_rate);
        case ARG_HISTORY_REPORTS:
                return serve_parse_limit("history-reports", arg, 1, &limits->history_reports);
        case ARG_HISTORY_BYTES:
                return serve_parse_limit("history-bytes", arg, 1, &limits->history_bytes);
        case ARG_PENDING_REPORTS:
                return serve_parse_limit("pending-reports", arg, 0, &limits->pending_reports);
        default:
                return -ENOENT;
        }
}

/* Parses a number of OPTION from min to max into *ret, or logs why not. */
static int serve_parse_number(const char *option, const char *s, uint64_t min, uint64_t max,
                              uint64_t *ret)
{
        uint64_t n;

        if (parse_u64(s, &n) < 0 || n < min || n > max) {
                log_error("--%s must be a number from %" PRIu64 " to %" PRIu64 ", not '%s'.",
                          option, min, max, s);
                return -EINVAL;
        }
        *ret = n;
        return 0;
}

/* The options that set struct http_options; -ENOENT for any other. */
static int serve_parse_http_option(int c, const char *arg, struct http_options *o)
{
        uint64_t n;
        int r;

        switch (c) {
        case ARG_MAX_BODY:
                r = serve_parse_number("max-body", arg, 1, HTTP_MAX_BODY_LIMIT, &n);
                o->max_body = (size_t)n;
                return r;
        case ARG_HEAD_TIMEOUT:
                r = serve_parse_number("head-timeout", arg, 1, HTTP_TIMEOUT_LIMIT, &n);
                o->head_timeout = (unsigned)n;
                return r;
        case ARG_BODY_TIMEOUT:
                r = serve_parse_number("body-timeout", arg, 1, HTTP_TIMEOUT_LIMIT, &n);
                o->body_timeout = (unsigned)n;
                return r;
        case ARG_MAX_CONNECTIONS:
                r = serve_parse_number("max-connections", arg, 1, HTTP_MAX_CONNECTIONS_LIMIT, &n);
                o->max_connections = (unsigned)n;
                return r;
        case ARG_MAX_PER_ADDRESS:
                r = serve_parse_number("max-connections-per-address", arg, 0,
                                       HTTP_MAX_CONNECTIONS_LIMIT, &n);
                o->max_connections_per_address = (unsigned)n;
                return r;
        case ARG_MAX_WAITERS:
                r = serve_parse_number("max-waiters", arg, 0, HTTP_MAX_WAITERS_LIMIT, &n);
                o->max_waiters = (unsigned)n;
                return r;
        case ARG_TRUSTED_PROXY:
                if (o->n_trusted_proxies >= HTTP_MAX_TRUSTED_PROXIES) {
                        log_error("--trusted-proxy can be given at most %d times.",
                                  HTTP_MAX_TRUSTED_PROXIES);
                        return -EINVAL;
                }
                if (forwarded_address_normalize(arg, o->trusted_proxies[o->n_trusted_proxies]) <
                    0) {
                        log_error("--trusted-proxy must be a numeric IPv4 or IPv6 address, not "
                                  "'%s'.",
                                  arg);
                        return -EINVAL;
                }
                o->n_trusted_proxies++;
                return 0;
        default:
                return -ENOENT;
        }
}

static const struct option serve_options_table[] = {
    {"listen", required_argument, NULL, ARG_LISTEN},
    {"data", required_argument, NULL, ARG_DATA},
    {"db", required_argument, NULL, ARG_DB},
    {"port-file", required_argument, NULL, ARG_PORT_FILE},
    {"max-body", required_argument, NULL, ARG_MAX_BODY},
    {"enroll-policy", required_argument, NULL, ARG_POLICY},
    {"max-waiters", required_argument, NULL, ARG_MAX_WAITERS},
    {"head-timeout", required_argument, NULL, ARG_HEAD_TIMEOUT},
    {"body-timeout", required_argument, NULL, ARG_BODY_TIMEOUT},
    {"max-connections", required_argument, NULL, ARG_MAX_CONNECTIONS},
    {"max-connections-per-address", required_argument, NULL, ARG_MAX_PER_ADDRESS},
    {"trusted-proxy", required_argument, NULL, ARG_TRUSTED_PROXY},
    {"history-reports", required_argument, NULL, ARG_HISTORY_REPORTS},
    {"history-bytes", required_argument, NULL, ARG_HISTORY_BYTES},
    {"pending-reports", required_argument, NULL, ARG_PENDING_REPORTS},
    {"pending-rate", required_argument, NULL, ARG_PENDING_RATE},
    {"pending-max", required_argument, NULL, ARG_PENDING_MAX},
    {"operator-token-file", required_argument, NULL, ARG_TOKEN_FILE},
    {"proof-window", required_argument, NULL, ARG_PROOF_WINDOW},
    {"enroll-window", required_argument, NULL, ARG_ENROLL_WINDOW},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {},
};

/* Returns 1 to serve, 0 after --help, or -EINVAL for a usage error (logged). */
static int serve_parse_argv(int argc, char **argv, struct serve_options *ret)
{
        struct serve_options o = {
            .listen_arg = SERVE_LISTEN_DEFAULT,
            .http = HTTP_OPTIONS_DEFAULT,
            .limits = {.history_reports = STORE_HISTORY_REPORTS_DEFAULT,
                       .history_bytes = STORE_HISTORY_BYTES_DEFAULT,
                       .pending_reports = STORE_PENDING_REPORTS_DEFAULT,
                       .pending_machines = STORE_PENDING_MACHINES_DEFAULT},
            .pending_rate = SERVICE_PENDING_RATE_DEFAULT,
            .proof_window = PROOF_WINDOW_DEFAULT,
            .enroll_window = ENROLLMENT_WINDOW_DEFAULT,
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "vh", serve_options_table, NULL)) >= 0) {
                r = serve_parse_http_option(c, optarg, &o.http);
                if (r == -ENOENT)
                        r = serve_parse_quota(c, optarg, &o);
                if (r == -ENOENT)
                        r = serve_parse_auth(c, optarg, &o);
                if (r == -EINVAL)
                        return r;
                if (r == 0)
                        continue;
                switch (c) {
                case ARG_LISTEN:
                        o.listen_arg = optarg;
                        break;
                case ARG_DATA:
                        o.data_dir = optarg;
                        break;
                case ARG_DB:
                        o.db_path = optarg;
                        break;
                case ARG_PORT_FILE:
                        o.port_file = optarg;
                        break;
                case ARG_POLICY:
                        o.policy_path = optarg;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        serve_help();
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov serve --help'.", argv[optind]);
                return -EINVAL;
        }
        if (!o.data_dir) {
                log_error("--data DIR is required. Run 'nixprov serve --help'.");
                return -EINVAL;
        }
        if (http_listen_parse(o.listen_arg, &o.listen) < 0) {
                log_error("--listen must be ADDR:PORT or [ADDR]:PORT with a numeric address, "
                          "not '%s'.",
                          o.listen_arg);
                return -EINVAL;
        }
        *ret = o;
        return 1;
}

/* The data directory, the policy and the database's path (*ret_db_path, in *ret_default_db
 * when it is the default one), before anything listens. Logs why it fails. */
static int serve_prepare(const struct serve_options *o, struct enrollment_policy **ret_policy,
                         char **ret_default_db, const char **ret_db_path)
{
        _cleanup_(enrollment_policy_freep) struct enrollment_policy *policy = NULL;
        char *default_db = NULL;
        struct stat st;
        int r;

        if (stat(o->data_dir, &st) < 0)
                return log_error_errno(-errno, "Cannot use data directory %s: %m", o->data_dir);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "Data directory %s is not a directory.",
                                       o->data_dir);
        if (o->policy_path) {
                r = serve_load_policy(o->policy_path, &policy);
                if (r < 0)
                        return r;
                log_info("Enrollment policy %s: approving %zu machine ids, %zu MAC addresses, "
                         "%zu tokens.",
                         o->policy_path, policy->n_machine_ids, policy->n_macs,
                         policy->n_token_keys);
        }
        if (!o->db_path && asprintf(&default_db, "%s/%s", o->data_dir, SERVE_DB_NAME) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        *ret_policy = TAKE_PTR(policy);
        *ret_default_db = default_db;
        *ret_db_path = o->db_path ?: default_db;
        return 0;
}

/* The default token file: operator.token in the database's directory. */
static int serve_default_token_path(const char *db_path, char **ret)
{
        _cleanup_free_ char *copy = strdup(db_path);

        if (!copy || asprintf(ret, "%s/%s", dirname(copy), OPERATOR_TOKEN_FILE) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");
        return 0;
}

/* The operator token's digest, from --operator-token-file or the default file (made when
 * missing). Logs the file's path, never its content. Returns 0, -EINVAL for a file that cannot
 * be used (exit 2), or another negative errno. */
static int serve_load_operator_token(const struct serve_options *o, const char *db_path,
                                     uint8_t digest[static OPERATOR_TOKEN_DIGEST_BYTES])
{
        _cleanup_free_ char *default_path = NULL;
        const char *path = o->token_path;
        char *token;
        int r;

        if (!path) {
                r = serve_default_token_path(db_path, &default_path);
                if (r < 0)
                        return r;
                path = default_path;
                r = operator_token_create(path);
                if (r == 0)
                        log_info("Made the operator token %s (mode 0600): 'nixprov fleet' reads it "
                                 "from there.",
                                 path);
                else if (r != -EEXIST)
                        return log_error_errno(r, "Failed to make the operator token %s: %m", path);
        }
        r = operator_token_read(path, &token);
        if (r == -EPERM)
                return log_error_errno(-EINVAL,
                                       "Operator token file %s may be read by others: it must be "
                                       "mode 0600 or stricter.",
                                       path);
        if (r == -EINVAL)
                return log_error_errno(r, "Operator token file %s is not a regular file.", path);
        if (r == -EBADMSG)
                return log_error_errno(-EINVAL,
                                       "Operator token file %s must hold %d to %d printable "
                                       "characters without spaces.",
                                       path, OPERATOR_TOKEN_MIN, OPERATOR_TOKEN_MAX);
        if (r < 0) {
                log_error_errno(r, "Cannot read operator token file %s: %m", path);
                return -EINVAL;
        }
        operator_token_digest(token, strlen(token), digest);
        sodium_free(token);
        log_info("Operator endpoints need the bearer token in %s.", path);
        return 0;
}

static int serve_open_store(const char *db_path, struct store **ret)
{
        int r;

        r = store_open(db_path, ret);
        if (r == -EPROTO)
                return log_error_errno(r,
                                       "Database %s was written by a newer nixprov (schema above "
                                       "%d).",
                                       db_path, STORE_SCHEMA_VERSION);
        if (r < 0)
                return log_error_errno(r, "Failed to open database %s: %m", db_path);
        return 0;
}

/* Raises the soft limit of open files to what the connections need (max_connections, and
 * max_waiters held ones on top), up to the hard limit. */
static void serve_raise_fd_limit(const struct http_options *o)
{
        rlim_t need = (rlim_t)o->max_connections + o->max_waiters + SERVE_SPARE_FDS;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
                log_warning("--max-connections %u and --max-waiters %u need %llu open files, the "
                            "limit is %llu: connections past it are refused.",
                            o->max_connections, o->max_waiters, (unsigned long long)need,
                            (unsigned long long)rl.rlim_cur);
}

/* Says where it listens, on stdout and in the port file. */
static int serve_announce(const struct serve_options *o, const struct http_server *server)
{
        int r;

        if (o->listen.address.ss_family == AF_INET6)
                printf("listening on http://[%s]:%u\n", o->listen.host,
                       (unsigned)http_server_port(server));
        else
                printf("listening on http://%s:%u\n", o->listen.host,
                       (unsigned)http_server_port(server));
        fflush(stdout);

        if (o->port_file) {
                r = serve_write_port_file(o->port_file, http_server_port(server));
                if (r < 0)
                        return log_error_errno(r, "Failed to write port file %s: %m", o->port_file);
        }
        return 0;
}

static unsigned serve_waiters(void *userdata)
{
        return http_server_waiters(userdata);
}

static void serve_profiles_changed(void *userdata)
{
        log_debug("Profiles changed: waking the waiting requests.");
        http_server_wake(userdata);
}

/* Starts the daemon, and the watch that wakes its held requests. Logs why it fails. */
static int serve_start(const struct serve_options *o, struct routes *routes,
                       struct http_server **ret_server, struct service_watch **ret_watch)
{
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        int r;

        serve_raise_fd_limit(&o->http);
        r = http_server_start(&o->listen, &o->http, routes_handle, routes, &server);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", o->listen_arg);
        if (o->http.max_waiters > 0) {
                r = service_watch_start(o->data_dir, serve_profiles_changed, server, ret_watch);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch %s for new profiles: %m",
                                               o->data_dir);
        }
        service_set_waiters_fn(serve_waiters, server);
        *ret_server = TAKE_PTR(server);
        return 0;
}

/* Until SIGTERM or SIGINT (blocked in every thread). Returns 0, or the error of sigwait(). */
static int serve_wait(const sigset_t *signals)
{
        int r, signal_number;

        for (;;) {
                r = sigwait(signals, &signal_number);
                if (r == 0)
                        break;
                if (r != EINTR)
                        return log_error_errno(-r, "Failed to wait for signals: %m");
        }
        log_info("Received %s, stopping.", strsignal(signal_number));
        return 0;
}

int cmd_serve(int argc, char **argv)
{
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        _cleanup_(service_watch_freep) struct service_watch *watch = NULL;
        _cleanup_(store_freep) struct store *store = NULL;
        _cleanup_(enrollment_policy_freep) struct enrollment_policy *policy = NULL;
        _cleanup_(service_rate_freep) struct service_rate *pending_rate = NULL;
        _cleanup_free_ char *default_db = NULL;
        const char *db_path = NULL;
        struct serve_options o;
        struct routes routes;
        uint8_t operator_digest[OPERATOR_TOKEN_DIGEST_BYTES];
        sigset_t signals;
        int r;

        r = serve_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r == 0 ? EXIT_OK : EXIT_USAGE;
        r = serve_prepare(&o, &policy, &default_db, &db_path);
        if (r < 0)
                return EXIT_FAIL;
        r = serve_load_operator_token(&o, db_path, operator_digest);
        if (r < 0)
                return r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;

        /* Before any thread starts, so that every thread inherits the mask and only sigwait()
         * in serve_wait() receives these. */
        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGINT);
        r = pthread_sigmask(SIG_BLOCK, &signals, NULL);
        if (r != 0) {
                log_error_errno(-r, "Failed to block signals: %m");
                return EXIT_FAIL;
        }
        (void)signal(SIGPIPE, SIG_IGN);

        r = serve_open_store(db_path, &store);
        if (r < 0)
                return EXIT_FAIL;

        (void)store_set_limits(store, &o.limits); /* checked by serve_parse_argv() */
        r = service_rate_new(o.pending_rate, &pending_rate);
        if (r < 0) {
                log_oom();
                return EXIT_FAIL;
        }

        routes = (struct routes){.data_dir = o.data_dir,
                                 .store = store,
                                 .policy = policy,
                                 .pending_rate = pending_rate,
                                 .proof_window = (int64_t)o.proof_window,
                                 .enroll_window = (int64_t)o.enroll_window,
                                 .operator_digest = operator_digest};
        r = serve_start(&o, &routes, &server, &watch);
        if (r < 0)
                return EXIT_FAIL;
        r = serve_announce(&o, server);
        if (r < 0)
                return EXIT_FAIL;

        r = serve_wait(&signals);

        /* Finishes the requests in progress: a report being committed is answered; the held
         * ones are answered 304. */
        watch = service_watch_stop(watch);
        service_set_waiters_fn(NULL, NULL);
        server = http_server_stop(server);
        store = store_close(store);
        if (o.port_file)
                (void)unlink(o.port_file);
        return r == 0 ? EXIT_OK : EXIT_FAIL;
}
