/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trust.h"
#include "util.h"

int64_t trust_build_time(void)
{
        return (int64_t)NIXPROV_BUILD_TIME;
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
        int64_t m = a > b ? a : b;
        return m > c ? m : c;
}

static bool profile_names_device(const struct profile *p, const struct trust_context *ctx)
{
        for (size_t i = 0; i < p->n_machines; i++)
                if (ctx->machine_id && streq(p->machines[i], ctx->machine_id))
                        return true;
        for (size_t i = 0; i < p->n_groups; i++)
                for (size_t j = 0; j < ctx->n_groups; j++)
                        if (streq(p->groups[i], ctx->groups[j]))
                                return true;
        return false;
}

int trust_check_signed(const struct minisign_public_key *keys, size_t n_keys,
                       const uint8_t *profile, size_t size, const char *filename,
                       const char *signature, size_t signature_size, struct trust_result *ret)
{
        struct minisign_signature sig;
        const struct minisign_public_key *signer = NULL;
        _cleanup_(profile_freep) struct profile *p = NULL;
        int r;

        if (size > PROFILE_MAX_BYTES)
                return TRUST_REFUSED_TOO_LARGE;

        /* The signature, over the raw bytes, before anything looks inside them. */
        r = minisign_signature_parse(signature, signature_size, &sig);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return TRUST_REFUSED_SIGNATURE_MALFORMED;
        memcpy(ret->signature_key_id, sig.key_id, sizeof(sig.key_id));
        ret->have_signature_key_id = true;

        r = TRUST_REFUSED_UNKNOWN_KEY;
        for (size_t i = 0; i < n_keys; i++) {
                int k = minisign_verify(&keys[i], &sig, profile, size);

                if (k == -ENOKEY)
                        continue; /* another key's id: try the next trusted key */
                r = k;
                if (k == 0)
                        signer = &keys[i];
                break;
        }
        if (r == -ENOMEM)
                return r;
        if (r == -ENOKEY)
                return TRUST_REFUSED_UNKNOWN_KEY;
        if (r < 0)
                return TRUST_REFUSED_BAD_SIGNATURE;

        /* Only now is the YAML parsed. */
        r = profile_parse((const char *)profile, size, filename, &p, &ret->error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return TRUST_REFUSED_INVALID;

        ret->key = signer;
        ret->profile = TAKE_PTR(p);
        return 0;
}

int trust_decide(const struct trust_context *ctx, const uint8_t *profile, size_t size,
                 const char *filename, const char *signature, size_t signature_size,
                 struct trust_result *ret)
{
        int r;

        *ret = (struct trust_result){};
        ret->trusted_now =
            max3(ctx->now, ctx->build_time, ctx->have_applied ? ctx->applied_time : 0);

        r = trust_check_signed(ctx->keys, ctx->n_keys, profile, size, filename, signature,
                               signature_size, ret);
        if (r < 0)
                return r;

        /* Rollback: an older serial is refused, the same serial is nothing to do. */
        if (ctx->have_applied && ret->profile->serial < ctx->applied_serial)
                return TRUST_REFUSED_ROLLBACK;

        /* Freeze: the clock is believed only above the floor. */
        if (ret->profile->expires <= ret->trusted_now)
                return TRUST_REFUSED_EXPIRED;

        /* Mix-and-match: the profile must be meant for this device. */
        if (!profile_names_device(ret->profile, ctx))
                return TRUST_REFUSED_WRONG_MACHINE;

        ret->decision = ctx->have_applied && ret->profile->serial == ctx->applied_serial
                            ? TRUST_UP_TO_DATE
                            : TRUST_APPLY;
        return 0;
}

int trust_read_files(const char *profile_path, const char *signature_path, char **ret_profile,
                     size_t *ret_profile_size, char **ret_signature, size_t *ret_signature_size,
                     char **ret_failed_path)
{
        _cleanup_free_ char *default_signature = NULL, *profile = NULL, *signature = NULL;
        size_t profile_size, signature_size;
        int r;

        if (!signature_path) {
                if (asprintf(&default_signature, "%s.minisig", profile_path) < 0)
                        return -ENOMEM;
                signature_path = default_signature;
        }
        r = read_file_bounded(profile_path, PROFILE_MAX_BYTES, &profile, &profile_size);
        if (r < 0) {
                if (ret_failed_path)
                        *ret_failed_path = strdup(profile_path);
                return r == -E2BIG ? TRUST_REFUSED_TOO_LARGE : r;
        }
        r = read_file_bounded(signature_path, MINISIGN_FILE_MAX, &signature, &signature_size);
        if (r < 0) {
                if (ret_failed_path)
                        *ret_failed_path = strdup(signature_path);
                return r == -E2BIG ? TRUST_REFUSED_SIGNATURE_MALFORMED : r;
        }
        *ret_profile = TAKE_PTR(profile);
        *ret_profile_size = profile_size;
        *ret_signature = TAKE_PTR(signature);
        *ret_signature_size = signature_size;
        return 0;
}

void trust_result_done(struct trust_result *result)
{
        result->profile = profile_free(result->profile);
}

const char *trust_strerror(int error)
{
        switch (error) {
        case 0:
                return "accepted";
        case TRUST_REFUSED_TOO_LARGE:
                return "profile larger than the 1 MiB limit";
        case TRUST_REFUSED_SIGNATURE_MALFORMED:
                return "signature file is not a minisign signature";
        case TRUST_REFUSED_UNKNOWN_KEY:
                return "signed by a key that is not trusted";
        case TRUST_REFUSED_BAD_SIGNATURE:
                return "signature does not match: forged, or the profile or its trusted comment "
                       "was changed";
        case TRUST_REFUSED_INVALID:
                return "profile is not valid";
        case TRUST_REFUSED_ROLLBACK:
                return "serial is lower than the one already applied (rollback)";
        case TRUST_REFUSED_EXPIRED:
                return "profile has expired";
        case TRUST_REFUSED_WRONG_MACHINE:
                return "profile names neither this machine nor any of its groups";
        case -ENOMEM:
                return "out of memory";
        default:
                return "refused";
        }
}

static void format_names(struct buf *b, char *const *names, size_t n)
{
        if (n == 0) {
                (void)buf_puts(b, "none");
                return;
        }
        for (size_t i = 0; i < n && i < 4; i++)
                (void)buf_printf(b, "%s%s", i ? ", " : "", names[i]);
        if (n > 4)
                (void)buf_printf(b, " and %zu more", n - 4);
}

char *trust_format_refusal(const struct trust_context *ctx, const struct trust_result *result,
                           int error)
{
        const struct profile *p = result->profile;
        char key_id[MINISIGN_KEY_ID_STRING_MAX], t1[RFC3339_MAX], t2[RFC3339_MAX];
        struct buf b = BUF_INIT(8192);

        switch (error) {
        case TRUST_REFUSED_INVALID: {
                char where[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX +
                           PROFILE_ERROR_MESSAGE_MAX + 32];

                (void)buf_printf(&b, "signed by a trusted key but not a valid profile: %s",
                                 profile_error_format(&result->error, where, sizeof(where)));
                break;
        }
        case TRUST_REFUSED_UNKNOWN_KEY:
        case TRUST_REFUSED_BAD_SIGNATURE:
                (void)buf_printf(&b, "%s (signature key %s; trusted keys: ", trust_strerror(error),
                                 minisign_key_id_to_string(result->signature_key_id, key_id));
                for (size_t i = 0; i < ctx->n_keys; i++)
                        (void)buf_printf(&b, "%s%s", i ? ", " : "",
                                         minisign_key_id_to_string(ctx->keys[i].key_id, key_id));
                (void)buf_puts(&b, ")");
                break;
        case TRUST_REFUSED_ROLLBACK:
                (void)buf_printf(&b,
                                 "serial %" PRIu64 " is lower than the applied serial %" PRIu64
                                 " (rollback)",
                                 p->serial, ctx->applied_serial);
                break;
        case TRUST_REFUSED_EXPIRED:
                (void)buf_printf(&b, "serial %" PRIu64 " expired at %s (trusted time now %s)",
                                 p->serial, format_rfc3339_utc(p->expires, t1),
                                 format_rfc3339_utc(result->trusted_now, t2));
                break;
        case TRUST_REFUSED_WRONG_MACHINE:
                (void)buf_printf(
                    &b,
                    "serial %" PRIu64 " is not for this machine (it names machines: ", p->serial);
                format_names(&b, p->machines, p->n_machines);
                (void)buf_puts(&b, "; groups: ");
                format_names(&b, p->groups, p->n_groups);
                (void)buf_printf(&b, "; this machine is %s, in groups: ", ctx->machine_id);
                format_names(&b, ctx->groups, ctx->n_groups);
                (void)buf_puts(&b, ")");
                break;
        default:
                (void)buf_puts(&b, trust_strerror(error));
        }
        return buf_steal(&b, NULL);
}
