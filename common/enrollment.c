/* SPDX-License-Identifier: MIT */
/* Enrollment, as the server sees it: requests, token proofs and the enrollment policy. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "enrollment.h"
#include "machine_id.h"
#include "util.h"
#include "yaml_schema.h"

#define ENROLLMENT_POLICY_MAX_DEPTH 3 /* approve.macs is a list in a mapping in the document */
#define ENROLLMENT_POLICY_MAX_VALUE 4096

/* ---- the request ----------------------------------------------------------------------------- */

bool enrollment_mac_is_valid(const char *s)
{
        if (!s || strlen(s) != 17)
                return false;
        for (size_t i = 0; i < 17; i++) {
                if (i % 3 == 2) {
                        if (s[i] != ':')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* A string of min..max bytes without control characters. */
static bool enrollment_text_is_valid(const char *s, size_t max)
{
        size_t n = strlen(s);

        if (n < 1 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

static bool enrollment_key_decode(json_t *v, uint8_t out[static 32])
{
        const char *s = json_string_value(v);
        size_t n;

        return s && base64_decode_strict(s, strlen(s), out, 32, &n) == 0 && n == 32;
}

static const char *enrollment_get_integer(json_t *json, const char *key, int64_t min, int64_t *ret,
                                          const char *problem_missing, const char *problem_invalid)
{
        json_t *v = json_object_get(json, key);

        if (!v)
                return problem_missing;
        if (!json_is_integer(v) || json_integer_value(v) < min)
                return problem_invalid;
        *ret = json_integer_value(v);
        return NULL;
}

static const char *enrollment_check_macs(json_t *json, struct enrollment_request *r)
{
        json_t *v = json_object_get(json, "macs"), *mac;
        size_t i;

        if (!v)
                return "missing field 'macs'";
        if (!json_is_array(v) || json_array_size(v) > ENROLLMENT_MACS_MAX)
                return "field 'macs' must be a list of at most 64 MAC addresses";
        json_array_foreach(v, i, mac)
                if (!enrollment_mac_is_valid(json_string_value(mac)))
                        return "field 'macs' must hold MAC addresses like "
                               "\"aa:bb:cc:dd:ee:ff\" (lowercase)";
        r->macs = v;
        return NULL;
}

/* The device's two public keys. */
static const char *enrollment_check_keys(json_t *json, struct enrollment_request *r)
{
        json_t *v;

        v = json_object_get(json, "sign_key");
        if (!v)
                return "missing field 'sign_key'";
        if (!enrollment_key_decode(v, r->sign_key))
                return "field 'sign_key' must be the base64 of 32 bytes (an Ed25519 public key)";
        r->sign_key_base64 = json_string_value(v);

        v = json_object_get(json, "box_key");
        if (!v)
                return "missing field 'box_key'";
        if (!enrollment_key_decode(v, r->box_key))
                return "field 'box_key' must be the base64 of 32 bytes (an X25519 public key)";
        r->box_key_base64 = json_string_value(v);
        return NULL;
}

/* Returns NULL, or the problem for the client. */
static const char *enrollment_check(json_t *json, struct enrollment_request *r)
{
        const char *problem;
        json_t *v;

        if (!json_is_object(json))
                return "an enrollment must be a JSON object";

        v = json_object_get(json, "machine_id");
        if (!v)
                return "missing field 'machine_id'";
        if (!json_is_string(v) || !machine_id_is_canonical(json_string_value(v)))
                return "field 'machine_id' must be 32 lowercase hexadecimal digits";
        r->machine_id = json_string_value(v);

        v = json_object_get(json, "hostname");
        if (!v)
                return "missing field 'hostname'";
        if (!json_is_string(v) ||
            !enrollment_text_is_valid(json_string_value(v), ENROLLMENT_HOSTNAME_MAX))
                return "field 'hostname' must be a string of 1 to 253 bytes without control "
                       "characters";
        r->hostname = json_string_value(v);

        problem = enrollment_check_macs(json, r);
        if (problem)
                return problem;

        v = json_object_get(json, "system");
        if (!v)
                return "missing field 'system'";
        if (!json_is_string(v) ||
            !enrollment_text_is_valid(json_string_value(v), ENROLLMENT_SYSTEM_MAX))
                return "field 'system' must be a string of 1 to 64 bytes like \"x86_64-linux\"";
        r->system = json_string_value(v);

        problem = enrollment_get_integer(json, "cpus", 1, &r->cpus, "missing field 'cpus'",
                                         "field 'cpus' must be an integer of at least 1");
        if (problem)
                return problem;
        problem = enrollment_get_integer(json, "memory", 0, &r->memory, "missing field 'memory'",
                                         "field 'memory' must be a non-negative integer (bytes)");
        if (problem)
                return problem;

        problem = enrollment_check_keys(json, r);
        if (problem)
                return problem;

        problem = enrollment_get_integer(
            json, "time", 0, &r->time, "missing field 'time'",
            "field 'time' must be a non-negative integer (seconds since the epoch)");
        if (problem)
                return problem;

        v = json_object_get(json, "token_proof");
        if (v) {
                if (!enrollment_key_decode(v, r->token_proof))
                        return "field 'token_proof' must be the base64 of 32 bytes";
                r->has_token_proof = true;
        }
        return NULL;
}

int enrollment_request_parse(json_t *json, struct enrollment_request *ret, const char **ret_problem)
{
        struct enrollment_request r = {};
        const char *problem;

        if (!ret || !ret_problem)
                return -EINVAL;
        problem = enrollment_check(json, &r);
        if (problem) {
                *ret_problem = problem;
                return -EBADMSG;
        }
        r.facts = json_pack("{s:O, s:s, s:I, s:I}", "macs", r.macs, "system", r.system, "cpus",
                            (json_int_t)r.cpus, "memory", (json_int_t)r.memory);
        if (!r.facts)
                return -ENOMEM;
        *ret = r;
        return 0;
}

void enrollment_request_done(struct enrollment_request *request)
{
        if (!request)
                return;
        json_decref(request->facts);
        request->facts = NULL;
}

void enrollment_token_key(const uint8_t *token, size_t size, uint8_t ret_key[static 32])
{
        (void)crypto_generichash(ret_key, 32, token, size, NULL, 0);
}

void enrollment_token_proof(const uint8_t key[static 32], const char *machine_id,
                            const uint8_t sign_key[static ENROLLMENT_KEY_BYTES],
                            const uint8_t box_key[static ENROLLMENT_KEY_BYTES],
                            uint8_t ret_proof[static ENROLLMENT_PROOF_BYTES])
{
        crypto_generichash_state state;

        (void)crypto_generichash_init(&state, key, 32, ENROLLMENT_PROOF_BYTES);
        (void)crypto_generichash_update(&state, (const uint8_t *)machine_id, 32);
        (void)crypto_generichash_update(&state, sign_key, ENROLLMENT_KEY_BYTES);
        (void)crypto_generichash_update(&state, box_key, ENROLLMENT_KEY_BYTES);
        (void)crypto_generichash_final(&state, ret_proof, ENROLLMENT_PROOF_BYTES);
        sodium_memzero(&state, sizeof(state));
}

/* ---- the policy ------------------------------------------------------------------------------ */

static int check_machine_id(struct yaml_schema_parser *p, char *item)
{
        char id[MACHINE_ID_STRING_MAX];

        if (machine_id_normalize(item, id) < 0 || strchr(item, '\n'))
                return yaml_schema_fail_value(
                    p, "invalid machine id '%s' (expected 32 hexadecimal digits or a UUID)", item);
        memcpy(item, id, sizeof(id)); /* never longer than what it replaces */
        return 0;
}

static int check_mac(struct yaml_schema_parser *p, char *item)
{
        for (char *c = item; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                        *c = (char)(*c - 'A' + 'a');
        if (!enrollment_mac_is_valid(item))
                return yaml_schema_fail_value(
                    p, "invalid MAC address '%s' (expected six hex bytes like 52:54:00:12:34:56)",
                    item);
        return 0;
}

static int parse_machine_ids(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                             void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a machine id", check_machine_id);
}

static int parse_macs(struct yaml_schema_parser *p, const struct yaml_schema_field *f, void *base)
{
        return yaml_schema_parse_string_list(p, f, base, "a MAC address", check_mac);
}

int enrollment_token_file_key(const char *path, uint8_t ret_key[static 32])
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint8_t *token;
        size_t size = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        /* An enrollment token anyone can read lets anyone enroll. */
        if (st.st_mode & 0077)
                return -EPERM;

        token = sodium_malloc(ENROLLMENT_TOKEN_MAX + 1);
        if (!token)
                return -ENOMEM;
        r = read_fd_into(fd, token, ENROLLMENT_TOKEN_MAX, &size);
        if (r >= 0 && size > 0 && token[size - 1] == '\n')
                size--;
        if (r >= 0 && size == 0)
                r = -EINVAL;
        if (r >= 0)
                enrollment_token_key(token, size, ret_key);
        sodium_free(token); /* wipes */
        return r;
}

/* Reads one token file of the policy into its key k, with the error at its line. */
static int load_token(struct yaml_schema_parser *p, const char *path, uint8_t key[static 32])
{
        char quoted[YAML_SCHEMA_QUOTE_MAX + 4];
        int r;

        if (path[0] != '/')
                return yaml_schema_fail_value(p, "token file '%s' must be an absolute path", path);
        r = enrollment_token_file_key(path, key);
        if (r == -ENOMEM)
                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
        if (r == -EPERM)
                return yaml_schema_fail_event(p, -EBADMSG,
                                              "token file '%s' is readable or writable by its "
                                              "group or others: it must be mode 0600",
                                              yaml_schema_quote(path, quoted));
        if (r == -E2BIG)
                return yaml_schema_fail_event(p, -E2BIG, "token file '%s' is larger than %d bytes",
                                              yaml_schema_quote(path, quoted),
                                              ENROLLMENT_TOKEN_MAX);
        if (r == -EINVAL)
                return yaml_schema_fail_value(p, "token file '%s' is empty or not a regular file",
                                              path);
        if (r < 0)
                return yaml_schema_fail_event(p, -EBADMSG, "cannot read token file '%s': %s",
                                              yaml_schema_quote(path, quoted), strerror(-r));
        return 0;
}

static int parse_token_files(struct yaml_schema_parser *p, const struct yaml_schema_field *f,
                             void *base)
{
        struct enrollment_policy *policy = base;
        int r;

        if (p->event.type != YAML_SEQUENCE_START_EVENT)
                return yaml_schema_fail_type(p, "a list of token files");

        for (size_t i = 0;; i++) {
                const char *s = NULL;
                uint8_t *keys;
                char **files;

                r = yaml_schema_next(p);
                if (r < 0)
                        return r;
                if (p->event.type == YAML_SEQUENCE_END_EVENT)
                        return 0;

                size_t saved = yaml_schema_path_push_index(p, i);

                if (policy->n_token_keys >= f->max)
                        return yaml_schema_fail_event(p, -E2BIG, "more than %llu token files",
                                                      (unsigned long long)f->max);
                r = yaml_schema_expect_string(p, "the absolute path of a token file", &s);
                if (r < 0)
                        return r;

                files =
                    reallocarray(policy->token_files, policy->n_token_files + 1, sizeof(char *));
                if (!files)
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                policy->token_files = files;
                files[policy->n_token_files] = strdup(s);
                if (!files[policy->n_token_files])
                        return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                policy->n_token_files++;

                /* sodium_malloc'd and never grown: room for the most allowed. */
                if (!policy->token_keys) {
                        policy->token_keys = sodium_malloc((size_t)f->max * 32);
                        if (!policy->token_keys)
                                return yaml_schema_fail_event(p, -ENOMEM, "out of memory");
                }
                keys = policy->token_keys + policy->n_token_keys * 32;
                r = load_token(p, s, keys);
                if (r < 0)
                        return r;
                policy->n_token_keys++;
                yaml_schema_path_restore(p, saved);
        }
}

static const struct yaml_schema_field approve_fields[] = {
    {.key = "machine-ids",
     .parse = parse_machine_ids,
     .offset = offsetof(struct enrollment_policy, machine_ids),
     .count_offset = offsetof(struct enrollment_policy, n_machine_ids),
     .max = ENROLLMENT_POLICY_MACHINE_IDS_MAX},
    {.key = "macs",
     .parse = parse_macs,
     .offset = offsetof(struct enrollment_policy, macs),
     .count_offset = offsetof(struct enrollment_policy, n_macs),
     .max = ENROLLMENT_POLICY_MACS_MAX},
    {.key = "token-files",
     .parse = parse_token_files,
     .offset = 0,
     .max = ENROLLMENT_POLICY_TOKENS_MAX},
};
YAML_SCHEMA_DEFINE_TABLE(approve_table, approve_fields);

static const struct yaml_schema_field policy_fields[] = {
    {.key = "approve",
     .parse = yaml_schema_parse_section,
     .offset = 0,
     .flags = YAML_SCHEMA_FIELD_REQUIRED,
     .table = &approve_table},
    {.key = "refuse-unmatched",
     .parse = yaml_schema_parse_bool,
     .offset = offsetof(struct enrollment_policy, refuse_unmatched)},
};
YAML_SCHEMA_DEFINE_TABLE(policy_table, policy_fields);

int enrollment_policy_parse(const char *data, size_t size, const char *filename,
                            struct enrollment_policy **ret, struct profile_error *ret_error)
{
        _cleanup_(enrollment_policy_freep) struct enrollment_policy *policy = NULL;
        struct profile_error error = {};
        struct yaml_schema_parser p = {
            .data = data,
            .size = size,
            .filename = filename,
            .error = &error,
            .max_bytes = ENROLLMENT_POLICY_MAX_BYTES,
            .max_depth = ENROLLMENT_POLICY_MAX_DEPTH,
            .max_scalar = ENROLLMENT_POLICY_MAX_VALUE,
        };
        int r;

        if ((!data && size > 0) || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;

        r = yaml_schema_check(&p);
        if (r < 0)
                goto fail;
        policy = calloc(1, sizeof(*policy));
        if (!policy) {
                r = yaml_schema_fail_at(&p, -ENOMEM, 0, 0, "out of memory");
                goto fail;
        }
        r = yaml_schema_parse_document(&p, &policy_table, policy, NULL);
        if (r < 0)
                goto fail;
        yaml_schema_done(&p);
        *ret = TAKE_PTR(policy);
        return 0;
fail:
        yaml_schema_done(&p);
        if (ret_error)
                *ret_error = error;
        return r;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

struct enrollment_policy *enrollment_policy_free(struct enrollment_policy *p)
{
        if (!p)
                return NULL;
        strv_free(p->machine_ids, p->n_machine_ids);
        strv_free(p->macs, p->n_macs);
        strv_free(p->token_files, p->n_token_files);
        sodium_free(p->token_keys); /* wipes */
        free(p);
        return NULL;
}

const char *enrollment_policy_match(const struct enrollment_policy *policy,
                                    const struct enrollment_request *request)
{
        size_t i;
        json_t *mac;

        if (!policy || !request)
                return NULL;
        for (size_t k = 0; k < policy->n_machine_ids; k++)
                if (streq(policy->machine_ids[k], request->machine_id))
                        return "policy:machine-id";
        json_array_foreach(
            request->macs, i,
            mac) for (size_t k = 0; k < policy->n_macs;
                      k++) if (streq(policy->macs[k], json_string_value(mac))) return "policy:mac";
        if (request->has_token_proof)
                for (size_t k = 0; k < policy->n_token_keys; k++) {
                        uint8_t proof[ENROLLMENT_PROOF_BYTES];
                        bool match;

                        enrollment_token_proof(policy->token_keys + k * 32, request->machine_id,
                                               request->sign_key, request->box_key, proof);
                        match = sodium_memcmp(proof, request->token_proof, sizeof(proof)) == 0;
                        sodium_memzero(proof, sizeof(proof));
                        if (match)
                                return "policy:token";
                }
        return NULL;
}
