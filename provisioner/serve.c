/* SPDX-License-Identifier: MIT */
/* nixprov serve: the provisioning server. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "commands.h"
#include "enrollment.h"
#include "fileio.h"
#include "http.h"
#include "log.h"
#include "routes.h"
#include "service.h"
#include "store.h"
#include "util.h"

#define SERVE_LISTEN_DEFAULT "127.0.0.1:8470"
#define SERVE_DB_NAME "nixprov.db"

static void serve_help(void)
{
        printf("Usage: nixprov serve --data DIR [OPTIONS...]\n\n"
               "Serves signed profiles to machines and stores the reports they send.\n\n"
               "Options:\n"
               "  --listen ADDR:PORT  address to listen on; [ADDR]:PORT for IPv6, port 0 lets\n"
               "                      the kernel choose (default: %s)\n"
               "  --data DIR          profiles: DIR/machines/ID.yaml, DIR/groups/NAME.yaml,\n"
               "                      DIR/default.yaml, each with its .minisig (required)\n"
               "  --db FILE           the SQLite database of machines and reports\n"
               "                      (default: DIR/%s)\n"
               "  --port-file FILE    write the port listened on to FILE once bound\n"
               "  --max-body BYTES    largest request body accepted (default: %d, at most %d)\n"
               "  --enroll-policy FILE  which enrollments are approved without an operator:\n"
               "                      approve: {machine-ids: [...], macs: [...],\n"
               "                      token-files: [...]} (default: none; every enrollment\n"
               "                      waits for 'nixprov fleet approve')\n"
               "  --max-waiters N     profile requests with ?wait= held at once (default: %d);\n"
               "                      past it one is answered at once, as without a wait\n"
               "  -v, --verbose       log every request\n"
               "  -h, --help          show this help\n\n"
               "Endpoints: GET /v1/machines/ID/profile[.minisig][?groups=a,b] (approved machines\n"
               "only), POST /v1/enroll, POST /v1/reports (both signed by the device key),\n"
               "GET /v1/machines, GET /v1/machines/ID, GET /metrics, GET /healthz. A profile\n"
               "request with If-None-Match naming the current ETag is answered 304; with\n"
               "?wait=SECONDS too (at most %d), it is held until a new profile is published\n"
               "for the machine (inotify on DIR) or the wait ends.\n"
               "Stops cleanly on SIGTERM or SIGINT.\n",
               SERVE_LISTEN_DEFAULT, SERVE_DB_NAME, HTTP_MAX_BODY_DEFAULT, HTTP_MAX_BODY_LIMIT,
               HTTP_MAX_WAITERS_DEFAULT, ROUTES_WAIT_MAX);
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

struct serve_options {
        const char *listen_arg;
        const char *data_dir;
        const char *db_path; /* NULL: DATA/nixprov.db */
        const char *port_file;
        const char *policy_path;
        uint64_t max_body;
        uint64_t max_waiters;
        struct http_listen listen;
};

/* serve_parse_argv()'s options without a short form. */
enum {
        ARG_LISTEN = 0x100,
        ARG_DATA,
        ARG_DB,
        ARG_PORT_FILE,
        ARG_MAX_BODY,
        ARG_POLICY,
        ARG_MAX_WAITERS,
};

/* A number option from min to max; logs what is wrong. */
static int serve_parse_number(const char *option, const char *of, const char *arg, uint64_t min,
                              uint64_t max, uint64_t *ret)
{
        if (parse_u64(arg, ret) < 0 || *ret < min || *ret > max) {
                log_error("%s must be a number %sfrom %llu to %llu, not '%s'.", option, of,
                          (unsigned long long)min, (unsigned long long)max, arg);
                return -EINVAL;
        }
        return 0;
}

/* Returns 1 to serve, 0 after --help, or -EINVAL for a usage error (logged). */
static int serve_parse_argv(int argc, char **argv, struct serve_options *ret)
{
        static const struct option options[] = {
            {"listen", required_argument, NULL, ARG_LISTEN},
            {"data", required_argument, NULL, ARG_DATA},
            {"db", required_argument, NULL, ARG_DB},
            {"port-file", required_argument, NULL, ARG_PORT_FILE},
            {"max-body", required_argument, NULL, ARG_MAX_BODY},
            {"enroll-policy", required_argument, NULL, ARG_POLICY},
            {"max-waiters", required_argument, NULL, ARG_MAX_WAITERS},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct serve_options o = {.listen_arg = SERVE_LISTEN_DEFAULT,
                                  .max_body = HTTP_MAX_BODY_DEFAULT,
                                  .max_waiters = HTTP_MAX_WAITERS_DEFAULT};
        int c;

        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0)
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
                case ARG_MAX_BODY:
                        if (serve_parse_number("--max-body", "of bytes ", optarg, 1,
                                               HTTP_MAX_BODY_LIMIT, &o.max_body) < 0)
                                return -EINVAL;
                        break;
                case ARG_POLICY:
                        o.policy_path = optarg;
                        break;
                case ARG_MAX_WAITERS:
                        if (serve_parse_number("--max-waiters", "", optarg, 0,
                                               HTTP_MAX_WAITERS_LIMIT, &o.max_waiters) < 0)
                                return -EINVAL;
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

/* A held request keeps a descriptor: the soft limit goes up to the hard one. */
static void serve_raise_fd_limit(unsigned max_waiters)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning("Failed to raise the limit of open files for %u waiters: %s",
                            max_waiters, strerror(errno));
}

/* Starts the daemon, and the watch that wakes its held requests. Logs why it fails. */
static int serve_start(const struct serve_options *o, struct routes *routes,
                       struct http_server **ret_server, struct service_watch **ret_watch)
{
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        int r;

        serve_raise_fd_limit((unsigned)o->max_waiters);
        r = http_server_start_waiting(&o->listen, (size_t)o->max_body, (unsigned)o->max_waiters,
                                      routes_handle, routes, &server);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", o->listen_arg);
        if (o->max_waiters > 0) {
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
        _cleanup_free_ char *default_db = NULL;
        const char *db_path = NULL;
        struct serve_options o;
        struct routes routes;
        sigset_t signals;
        int r;

        r = serve_parse_argv(argc, argv, &o);
        if (r <= 0)
                return r == 0 ? EXIT_OK : EXIT_USAGE;
        r = serve_prepare(&o, &policy, &default_db, &db_path);
        if (r < 0)
                return EXIT_FAIL;

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

        routes = (struct routes){.data_dir = o.data_dir, .store = store, .policy = policy};
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
