/* SPDX-License-Identifier: MIT */
/* nixprov purge: forgets the machines that enrolled, were never approved, and have not been
 * heard of for a while, by writing the server's database directly (as nixprov fleet approve
 * does: on the server host, as the database's owner; SQLite lets it run beside the server). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "store.h"
#include "util.h"

static void purge_help(void)
{
        printf("Usage: nixprov purge --pending-older-than DURATION [--dry-run] --db FILE\n\n"
               "Deletes the machines that are pending (enrolled, never approved) and were last\n"
               "seen more than DURATION ago, with their reports, and prints their ids. A device\n"
               "that enrolls again later is taken as new.\n\n"
               "Options:\n"
               "  --pending-older-than DURATION  a number with a unit: s, m, h, d or w\n"
               "                                 (e.g. 7d, 12h; a bare number is seconds)\n"
               "  --dry-run                      print them, delete nothing\n"
               "  --db FILE                      the database of nixprov serve\n"
               "  --data DIR                     the same as --db DIR/nixprov.db\n"
               "  -h, --help                     show this help\n\n"
               "Exit codes: 0 success (also when none was old enough), 1 the database cannot be\n"
               "used, 2 usage error.\n");
}

/* "7d", "12h", "30m", "90s", "2w" or "3600" into seconds (at least 1). */
static int purge_parse_duration(const char *s, int64_t *ret_seconds)
{
        static const struct {
                char unit;
                int64_t seconds;
        } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
        size_t n = strlen(s);
        int64_t scale = 1;
        char digits[24];
        uint64_t v;

        for (size_t i = 0; n > 0 && i < ELEMENTSOF(units); i++)
                if (s[n - 1] == units[i].unit) {
                        scale = units[i].seconds;
                        n--;
                        break;
                }
        if (n == 0 || n >= sizeof(digits))
                return -EINVAL;
        memcpy(digits, s, n);
        digits[n] = '\0';
        if (parse_u64(digits, &v) < 0 || v == 0 || v > (uint64_t)INT64_MAX / (uint64_t)scale)
                return -EINVAL;
        *ret_seconds = (int64_t)v * scale;
        return 0;
}

struct purge_options {
        int64_t older_than; /* seconds; 0: not given */
        bool dry_run;
        const char *db;
        char *db_from_data; /* owned */
};

/* Returns 1 to purge, 0 after --help, or -EINVAL (logged) or -ENOMEM. */
static int purge_parse_argv(int argc, char **argv, struct purge_options *o)
{
        enum { ARG_OLDER = 0x100, ARG_DRY_RUN, ARG_DB, ARG_DATA };
        static const struct option options[] = {
            {"pending-older-than", required_argument, NULL, ARG_OLDER},
            {"dry-run", no_argument, NULL, ARG_DRY_RUN},
            {"db", required_argument, NULL, ARG_DB},
            {"data", required_argument, NULL, ARG_DATA},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_OLDER:
                        if (purge_parse_duration(optarg, &o->older_than) < 0) {
                                log_error("--pending-older-than must be a duration such as 7d, "
                                          "12h, 30m or 3600, not '%s'.",
                                          optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_DRY_RUN:
                        o->dry_run = true;
                        break;
                case ARG_DB:
                        o->db = optarg;
                        break;
                case ARG_DATA:
                        free(o->db_from_data);
                        if (asprintf(&o->db_from_data, "%s/nixprov.db", optarg) < 0) {
                                o->db_from_data = NULL;
                                return log_oom();
                        }
                        o->db = o->db_from_data;
                        break;
                case 'h':
                        purge_help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. Run 'nixprov purge --help'.", argv[optind]);
                return -EINVAL;
        }
        if (o->older_than == 0 || !o->db) {
                log_error("nixprov purge needs --pending-older-than DURATION and the server's "
                          "database: --db FILE or --data DIR.");
                return -EINVAL;
        }
        return 1;
}

static int purge_run(const struct purge_options *o)
{
        _cleanup_(store_freep) struct store *store = NULL;
        struct store_id_list ids = {};
        int r;

        /* store_open() would make a new, empty database: a typo must not look like nothing to
         * purge. */
        if (access(o->db, F_OK) < 0)
                return log_error_errno(-errno, "Cannot use database %s: %m", o->db);
        r = store_open(o->db, &store);
        if (r == -EPROTO)
                return log_error_errno(r,
                                       "Database %s was written by a newer nixprov (schema above "
                                       "%d).",
                                       o->db, STORE_SCHEMA_VERSION);
        if (r < 0)
                return log_error_errno(r, "Failed to open database %s: %m", o->db);
        r = store_purge_pending(store, (int64_t)time(NULL) - o->older_than, o->dry_run, &ids);
        if (r == -EBUSY)
                return log_error_errno(r, "The database is busy; try again.");
        if (r < 0)
                return log_error_errno(r, "Failed to purge pending machines: %m");
        for (size_t i = 0; i < ids.n_ids; i++)
                printf("%s %s\n", o->dry_run ? "Would purge" : "Purged", ids.ids[i]);
        printf("%s %zu pending machine%s last seen more than %lld s ago.\n",
               o->dry_run ? "Would purge" : "Purged", ids.n_ids, ids.n_ids == 1 ? "" : "s",
               (long long)o->older_than);
        store_id_list_done(&ids);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

int cmd_purge(int argc, char **argv)
{
        struct purge_options o = {};
        int r;

        r = purge_parse_argv(argc, argv, &o);
        if (r > 0)
                r = purge_run(&o) < 0 ? EXIT_FAIL : EXIT_OK;
        else
                r = r == 0 ? EXIT_OK : r == -ENOMEM ? EXIT_FAIL : EXIT_USAGE;
        free(o.db_from_data);
        return r;
}
