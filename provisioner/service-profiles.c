/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "log.h"
#include "profile.h"
#include "service.h"
#include "util.h"

/* Takes path when the file exists: 1 taken, 0 absent (path freed), or a negative errno. */
static int service_take_existing(char *path, char **ret_path)
{
        struct stat st;

        if (!path)
                return -ENOMEM;
        if (stat(path, &st) == 0) {
                *ret_path = path;
                return 1;
        }
        free(path);
        return errno == ENOENT ? 0 : -errno;
}

static char *service_path(const char *format, const char *a, const char *b)
{
        char *path;

        return asprintf(&path, format, a, b) < 0 ? NULL : path;
}

/* Splits groups (comma-separated) into names[] in list, every name validated before any file is
 * looked at. Returns the number of names or -EINVAL. */
static int service_split_groups(char *list, char *names[static SERVICE_GROUPS_MAX])
{
        int n_names = 0;

        for (char *p = list;;) {
                char *comma = strchr(p, ',');

                if (comma)
                        *comma = '\0';
                if (n_names >= SERVICE_GROUPS_MAX || !profile_group_name_valid(p))
                        return -EINVAL;
                names[n_names++] = p;
                if (!comma)
                        return n_names;
                p = comma + 1;
        }
}

/* Which profile a machine gets: its own file, else the first of its groups that has one, else
 * the default. Returns 0 with the path of the profile (without ".minisig"), -ENOENT when there
 * is none, -EINVAL for a bad group list, or another negative errno. */
static int service_choose_profile(const char *data_dir, const char *machine_id, const char *groups,
                                  char **ret_path, const char **ret_source)
{
        _cleanup_free_ char *list = NULL;
        char *names[SERVICE_GROUPS_MAX];
        int r, n_names = 0;

        r = service_take_existing(service_path("%s/machines/%s.yaml", data_dir, machine_id),
                                  ret_path);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret_source = "machine";
                return 0;
        }
        if (groups && *groups) {
                list = strdup(groups);
                if (!list)
                        return -ENOMEM;
                n_names = service_split_groups(list, names);
                if (n_names < 0)
                        return n_names;
        }
        for (int i = 0; i < n_names; i++) {
                r = service_take_existing(service_path("%s/groups/%s.yaml", data_dir, names[i]),
                                          ret_path);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret_source = "group";
                        return 0;
                }
        }
        r = service_take_existing(service_path("%s/default.yaml", data_dir, ""), ret_path);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret_source = "default";
        return 0;
}

/* A profile may carry what only an approved device should see (its sealed secrets, the fleet's
 * settings). */
static int service_check_approved(struct store *store, const char *machine_id,
                                  char reason[static SERVICE_REASON_MAX])
{
        struct store_trust trust;
        int r;

        r = store_get_trust(store, machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && trust.state == STORE_STATE_UNENROLLED))
                return service_fail(reason, -EPERM,
                                    "machine %s is not enrolled: it must POST /v1/enroll first",
                                    machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", machine_id);
                return service_fail(reason, service_store_errno(r),
                                    "failed to read the machine's state");
        }
        if (trust.state == STORE_STATE_PENDING)
                return service_fail(reason, -EPERM,
                                    "machine %s is waiting for an operator's approval "
                                    "('nixprov fleet approve %s')",
                                    machine_id, machine_id);
        if (trust.state == STORE_STATE_REVOKED)
                return service_fail(reason, -EPERM, "machine %s is revoked", machine_id);
        return 0;
}

static int service_read_profile(const char *path, const char *machine_id, const char *source,
                                enum service_profile_file file, char **ret_data, size_t *ret_size,
                                char reason[static SERVICE_REASON_MAX])
{
        const char *what = file == SERVICE_PROFILE_YAML ? "profile" : "signature";
        _cleanup_free_ char *signature_path = NULL;
        const char *read_path = path;
        int r;

        if (file == SERVICE_PROFILE_SIGNATURE) {
                if (asprintf(&signature_path, "%s.minisig", path) < 0) {
                        signature_path = NULL;
                        return service_fail(reason, -ENOMEM, "out of memory");
                }
                read_path = signature_path;
        }
        r = read_file_bounded(
            read_path, file == SERVICE_PROFILE_YAML ? SERVICE_PROFILE_MAX : SERVICE_SIGNATURE_MAX,
            ret_data, ret_size);
        if (r == -ENOENT)
                return service_fail(reason, -ENOENT, "no %s for machine %s (%s profile)", what,
                                    machine_id, source);
        if (r < 0) {
                log_error_errno(r, "Failed to read %s: %m", read_path);
                return service_fail(reason, -EIO, "failed to read the %s", what);
        }
        return 0;
}

/* BLAKE2b-128 over the profile's size (8 bytes, little-endian), the profile, and the signature
 * (or nothing, when there is none), as a quoted hex string. */
static void service_etag(const char *profile, size_t profile_size, const char *signature,
                         size_t signature_size, char ret_etag[static SERVICE_ETAG_MAX])
{
        unsigned char hash[16], size_le[8];
        crypto_generichash_state state;
        char hex[sizeof(hash) * 2 + 1];

        for (size_t i = 0; i < sizeof(size_le); i++)
                size_le[i] = (unsigned char)((uint64_t)profile_size >> (8 * i));
        crypto_generichash_init(&state, NULL, 0, sizeof(hash));
        crypto_generichash_update(&state, size_le, sizeof(size_le));
        crypto_generichash_update(&state, (const unsigned char *)profile, profile_size);
        if (signature)
                crypto_generichash_update(&state, (const unsigned char *)signature, signature_size);
        crypto_generichash_final(&state, hash, sizeof(hash));
        sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
        snprintf(ret_etag, SERVICE_ETAG_MAX, "\"%s\"", hex);
}

/* The other file of the pair that data (file) belongs to, read now, for the ETag. */
static int service_pair_etag(const char *path, enum service_profile_file file, const char *data,
                             size_t size, char ret_etag[static SERVICE_ETAG_MAX])
{
        _cleanup_free_ char *other = NULL, *signature_path = NULL;
        size_t other_size = 0;
        int r;

        if (file == SERVICE_PROFILE_YAML) {
                if (asprintf(&signature_path, "%s.minisig", path) < 0) {
                        signature_path = NULL;
                        return -ENOMEM;
                }
                r = read_file_bounded(signature_path, SERVICE_SIGNATURE_MAX, &other, &other_size);
                if (r < 0 && r != -ENOENT)
                        return r;
                service_etag(data, size, other, other_size, ret_etag);
                return 0;
        }
        r = read_file_bounded(path, SERVICE_PROFILE_MAX, &other, &other_size);
        if (r < 0)
                return r;
        service_etag(other, other_size, data, size, ret_etag);
        return 0;
}

int service_get_profile(struct store *store, const char *data_dir, const char *machine_id,
                        const char *groups, enum service_profile_file file, char **ret_data,
                        size_t *ret_size, const char **ret_source,
                        char reason[static SERVICE_REASON_MAX])
{
        return service_get_profile_etag(store, data_dir, machine_id, groups, file, ret_data,
                                        ret_size, ret_source, NULL, reason);
}

int service_get_profile_etag(struct store *store, const char *data_dir, const char *machine_id,
                             const char *groups, enum service_profile_file file, char **ret_data,
                             size_t *ret_size, const char **ret_source,
                             char *ret_etag /* SERVICE_ETAG_MAX, or NULL */,
                             char reason[static SERVICE_REASON_MAX])
{
        _cleanup_free_ char *path = NULL;
        const char *source = NULL;
        int r;

        r = service_check_approved(store, machine_id, reason);
        if (r < 0)
                return r;
        r = service_choose_profile(data_dir, machine_id, groups, &path, &source);
        if (r == -EINVAL)
                return service_fail(reason, -EINVAL,
                                    "invalid groups: expected at most %d comma-separated names "
                                    "matching [a-z0-9][a-z0-9._-]{0,63}",
                                    SERVICE_GROUPS_MAX);
        if (r == -ENOENT)
                return service_fail(reason, -ENOENT, "no profile for machine %s", machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to look up the profile of %s: %m", machine_id);
                return service_fail(reason, -EIO, "failed to look up the profile");
        }
        r = service_read_profile(path, machine_id, source, file, ret_data, ret_size, reason);
        if (r < 0)
                return r;
        if (ret_etag) {
                r = service_pair_etag(path, file, *ret_data, *ret_size, ret_etag);
                if (r < 0) {
                        free(*ret_data);
                        *ret_data = NULL;
                        log_error_errno(r, "Failed to read the pair of %s: %m", path);
                        return service_fail(reason, r == -ENOENT ? -ENOENT : -EIO,
                                            "failed to read the profile of this signature");
                }
        }
        *ret_source = source;
        return 0;
}
