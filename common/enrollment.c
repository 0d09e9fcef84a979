/* SPDX-License-Identifier: MIT */
/* Enrollment, as the server sees it: requests, token proofs and the enrollment policy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "enrollment.h"
#include "json_schema.h"
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

/* Not empty, no control characters (the length is the table's max_bytes). */
static bool enrollment_text_is_valid(const char *s)
{
        if (!s[0])
                return false;
        for (const char *c = s; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        return false;
        return true;
}

/* A public key or a proof: its base64 (borrowed) and its 32 bytes. */
struct enrollment_key32 {
        const char *base64;
        uint8_t raw[32];
};

static bool enrollment_key_decode(json_t *v, struct enrollment_key32 *key)
{
        const char *s = json_string_value(v);
        size_t n;

        if (!s || base64_decode_strict(s, strlen(s), key->raw, sizeof(key->raw), &n) < 0 ||
            n != sizeof(key->raw))
                return false;
        key->base64 = s;
        return true;
}

static const char *enrollment_parse_sign_key(json_t *v, void *field)
{
        return enrollment_key_decode(v, field)
                   ? NULL
                   : "must be the base64 of 32 bytes (an Ed25519 public key)";
}

static const char *enrollment_parse_box_key(json_t *v, void *field)
{
        return enrollment_key_decode(v, field)
                   ? NULL
                   : "must be the base64 of 32 bytes (an X25519 public key)";
}

static const char *enrollment_parse_proof(json_t *v, void *field)
{
        return enrollment_key_decode(v, field) ? NULL : "must be the base64 of 32 bytes";
}

/* What the table fills; enrollment_request_parse() copies it into struct enrollment_request. */
struct enrollment_fields {
        const char *machine_id;
        const char *hostname;
        const char *system;
        json_t *macs;
        int64_t cpus;
        int64_t memory;
        int64_t time;
        struct enrollment_key32 sign_key;
        struct enrollment_key32 box_key;
        struct enrollment_key32 token_proof;
        bool has_token_proof;
};

#define EF(field) offsetof(struct enrollment_fields, field)

static const struct json_schema_field enrollment_request_fields[] = {
    {.key = "machine_id",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .offset = EF(machine_id),
     .valid = machine_id_is_canonical,
     .expected = "32 lowercase hexadecimal digits"},
    {.key = "hostname",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .max_bytes = ENROLLMENT_HOSTNAME_MAX,
     .offset = EF(hostname),
     .valid = enrollment_text_is_valid,
     .expected = "a non-empty string without control characters"},
    {.key = "macs",
     .type = JSON_SCHEMA_STRING_ARRAY,
     .required = true,
     .max = ENROLLMENT_MACS_MAX,
     .offset = EF(macs),
     .valid = enrollment_mac_is_valid,
     .expected = "an array of MAC addresses like \"aa:bb:cc:dd:ee:ff\" (lowercase)"},
    {.key = "system",
     .type = JSON_SCHEMA_STRING,
     .required = true,
     .max_bytes = ENROLLMENT_SYSTEM_MAX,
     .offset = EF(system),
     .valid = enrollment_text_is_valid,
     .expected = "a Nix system like \"x86_64-linux\""},
    {.key = "cpus",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .min = 1,
     .max = INT64_MAX,
     .offset = EF(cpus)},
    {.key = "memory",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .max = INT64_MAX,
     .offset = EF(memory)},
    {.key = "sign_key",
     .type = JSON_SCHEMA_CUSTOM,
     .required = true,
     .offset = EF(sign_key),
     .parse = enrollment_parse_sign_key},
    {.key = "box_key",
     .type = JSON_SCHEMA_CUSTOM,
     .required = true,
     .offset = EF(box_key),
     .parse = enrollment_parse_box_key},
    {.key = "time",
     .type = JSON_SCHEMA_INTEGER,
     .required = true,
     .max = INT64_MAX,
     .offset = EF(time)},
    {.key = "token_proof",
     .type = JSON_SCHEMA_CUSTOM,
     .offset = EF(token_proof),
     .has_present = true,
     .present_offset = EF(has_token_proof),
     .parse = enrollment_parse_proof},
};

int enrollment_request_parse(json_t *json, struct enrollment_request *ret,
                             char problem[static ENROLLMENT_PROBLEM_MAX])
{
        struct enrollment_fields f;
        struct enrollment_request r = {};
        int k;

        if (!ret || !problem)
                return -EINVAL;
        if (!json_is_object(json)) {
                (void)snprintf(problem, ENROLLMENT_PROBLEM_MAX,
                               "an enrollment must be a JSON object");
                return -EBADMSG;
        }
        /* Members it does not name (the signature, a newer agent's facts) are ignored. */
        k = json_schema_parse(json, enrollment_request_fields,
                              ELEMENTSOF(enrollment_request_fields), JSON_SCHEMA_ALLOW_UNKNOWN, &f,
                              sizeof(f), problem);
        if (k < 0)
                return k;

        r = (struct enrollment_request){
            .machine_id = f.machine_id,
            .hostname = f.hostname,
            .system = f.system,
            .macs = f.macs,
            .cpus = f.cpus,
            .memory = f.memory,
            .time = f.time,
            .sign_key_base64 = f.sign_key.base64,
            .box_key_base64 = f.box_key.base64,
            .has_token_proof = f.has_token_proof,
        };
        memcpy(r.sign_key, f.sign_key.raw, sizeof(r.sign_key));
        memcpy(r.box_key, f.box_key.raw, sizeof(r.box_key));
        memcpy(r.token_proof, f.token_proof.raw, sizeof(r.token_proof));
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
        json_array_foreach(request->macs, i, mac)
                for (size_t k = 0; k < policy->n_macs; k++)
                        if (streq(policy->macs[k], json_string_value(mac)))
                                return "policy:mac";
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
