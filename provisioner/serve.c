/* SPDX-License-Identifier: MIT */
/* nixprov serve: the provisioning server. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "enrollment.h"
#include "fileio.h"
#include "http.h"
#include "log.h"
#include "routes.h"
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
               "  -v, --verbose       log every request\n"
               "  -h, --help          show this help\n\n"
               "Endpoints: GET /v1/machines/ID/profile[.minisig][?groups=a,b] (approved machines\n"
               "only), POST /v1/enroll, POST /v1/reports (both signed by the device key),\n"
               "GET /v1/machines, GET /v1/machines/ID, GET /metrics, GET /healthz.\n"
               "Stops cleanly on SIGTERM or SIGINT.\n",
               SERVE_LISTEN_DEFAULT, SERVE_DB_NAME, HTTP_MAX_BODY_DEFAULT, HTTP_MAX_BODY_LIMIT);
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

int cmd_serve(int argc, char **argv)
{
        enum { ARG_LISTEN = 0x100, ARG_DATA, ARG_DB, ARG_PORT_FILE, ARG_MAX_BODY, ARG_POLICY };
        static const struct option options[] = {
            {"listen", required_argument, NULL, ARG_LISTEN},
            {"data", required_argument, NULL, ARG_DATA},
            {"db", required_argument, NULL, ARG_DB},
            {"port-file", required_argument, NULL, ARG_PORT_FILE},
            {"max-body", required_argument, NULL, ARG_MAX_BODY},
            {"enroll-policy", required_argument, NULL, ARG_POLICY},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(http_server_freep) struct http_server *server = NULL;
        _cleanup_(store_freep) struct store *store = NULL;
        _cleanup_(enrollment_policy_freep) struct enrollment_policy *policy = NULL;
        _cleanup_free_ char *default_db = NULL;
        const char *listen_arg = SERVE_LISTEN_DEFAULT, *data_dir = NULL, *db_path = NULL;
        const char *port_file = NULL, *policy_path = NULL;
        struct http_listen listen;
        struct routes routes;
        uint64_t max_body = HTTP_MAX_BODY_DEFAULT;
        struct stat st;
        sigset_t signals;
        int c, r, signal_number;

        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0)
                switch (c) {
                case ARG_LISTEN:
                        listen_arg = optarg;
                        break;
                case ARG_DATA:
                        data_dir = optarg;
                        break;
                case ARG_DB:
                        db_path = optarg;
                        break;
                case ARG_PORT_FILE:
                        port_file = optarg;
                        break;
                case ARG_MAX_BODY:
                        if (parse_u64(optarg, &max_body) < 0 || max_body == 0 ||
                            max_body > HTTP_MAX_BODY_LIMIT) {
                                log_error("--max-body must be a number of bytes from 1 to %d, "
                                          "not '%s'.",
                                          HTTP_MAX_BODY_LIMIT, optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case ARG_POLICY:
                        policy_path = optarg;
                        break;
                case 'v':
                        log_set_max_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        serve_help();
                        return EXIT_OK;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov serve --help'.", argv[optind]);
                return EXIT_USAGE;
        }
        if (!data_dir) {
                log_error("--data DIR is required. Run 'nixprov serve --help'.");
                return EXIT_USAGE;
        }
        if (http_listen_parse(listen_arg, &listen) < 0) {
                log_error("--listen must be ADDR:PORT or [ADDR]:PORT with a numeric address, "
                          "not '%s'.",
                          listen_arg);
                return EXIT_USAGE;
        }
        if (stat(data_dir, &st) < 0) {
                log_error_errno(-errno, "Cannot use data directory %s: %m", data_dir);
                return EXIT_FAIL;
        }
        if (!S_ISDIR(st.st_mode)) {
                log_error("Data directory %s is not a directory.", data_dir);
                return EXIT_FAIL;
        }
        if (policy_path) {
                r = serve_load_policy(policy_path, &policy);
                if (r < 0)
                        return EXIT_FAIL;
                log_info("Enrollment policy %s: approving %zu machine ids, %zu MAC addresses, "
                         "%zu tokens.",
                         policy_path, policy->n_machine_ids, policy->n_macs, policy->n_token_keys);
        }
        if (!db_path) {
                if (asprintf(&default_db, "%s/%s", data_dir, SERVE_DB_NAME) < 0) {
                        default_db = NULL;
                        log_error("Out of memory.");
                        return EXIT_FAIL;
                }
                db_path = default_db;
        }

        /* Before any thread starts, so that every thread inherits the mask and only sigwait()
         * below receives these. */
        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGINT);
        r = pthread_sigmask(SIG_BLOCK, &signals, NULL);
        if (r != 0) {
                log_error_errno(-r, "Failed to block signals: %m");
                return EXIT_FAIL;
        }
        (void)signal(SIGPIPE, SIG_IGN);

        r = store_open(db_path, &store);
        if (r == -EPROTO) {
                log_error("Database %s was written by a newer nixprov (schema above %d).", db_path,
                          STORE_SCHEMA_VERSION);
                return EXIT_FAIL;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to open database %s: %m", db_path);
                return EXIT_FAIL;
        }

        routes = (struct routes){.data_dir = data_dir, .store = store, .policy = policy};
        r = http_server_start(&listen, (size_t)max_body, routes_handle, &routes, &server);
        if (r < 0) {
                log_error_errno(r, "Failed to listen on %s: %m", listen_arg);
                return EXIT_FAIL;
        }

        if (listen.address.ss_family == AF_INET6)
                printf("listening on http://[%s]:%u\n", listen.host,
                       (unsigned)http_server_port(server));
        else
                printf("listening on http://%s:%u\n", listen.host,
                       (unsigned)http_server_port(server));
        fflush(stdout);

        if (port_file) {
                r = serve_write_port_file(port_file, http_server_port(server));
                if (r < 0) {
                        log_error_errno(r, "Failed to write port file %s: %m", port_file);
                        return EXIT_FAIL;
                }
        }

        for (;;) {
                r = sigwait(&signals, &signal_number);
                if (r == 0)
                        break;
                if (r != EINTR) {
                        log_error_errno(-r, "Failed to wait for signals: %m");
                        break;
                }
        }
        if (r == 0)
                log_info("Received %s, stopping.", strsignal(signal_number));

        /* Finishes the requests in progress: a report being committed is answered. */
        server = http_server_stop(server);
        store = store_close(store);
        if (port_file)
                (void)unlink(port_file);
        return r == 0 ? EXIT_OK : EXIT_FAIL;
}
