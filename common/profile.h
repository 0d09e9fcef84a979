/* SPDX-License-Identifier: MIT */
#pragma once

/* The profile (schema 1): model and strict parser.
 *
 * profile_parse() turns untrusted YAML bytes into a typed struct through libyaml's event API
 * and a key table per mapping. It refuses unknown keys, duplicate keys, wrong types, aliases
 * and anchors, tags other than the plain ones, values out of range, another schema number,
 * more than one document, documents over PROFILE_MAX_BYTES, and lists or nesting past the
 * limits below; each error names file:line:column and the key. Sealed values are kept as the
 * bytes of the sealed box; nothing is decrypted here. It is fuzzed by tests/fuzz/fuzz-profile.c.
 *
 * The parser knows nothing of signatures or of the device: see trust.h for the decision to
 * apply a profile.
 *
 * How strict, in detail (docs/design.md has the schema itself):
 *  - Input is UTF-8 (a leading byte order mark is skipped); NUL bytes, invalid UTF-8 and raw
 *    control characters other than tab, CR and LF are refused before YAML is parsed. No scalar,
 *    key or value, may hold a control character (C0, DEL, C1) or U+2028/U+2029, whether raw or
 *    written as an escape ("\n", "\x1b"): values end up in nix.conf and machines files.
 *  - Numbers and booleans must be plain scalars: 7, not "7"; booleans are exactly true or false.
 *    Numbers are decimal without sign or leading zeros. Strings may be plain or quoted, but not
 *    null (an empty value, ~ or null).
 *  - machines: 32 hexadecimal digits in either case, or the UUID form 8-4-4-4-12 (a DMI product
 *    UUID); stored as 32 lowercase digits, the form of /etc/machine-id.
 *  - groups: [a-z0-9][a-z0-9._-]*, at most 64 bytes. Systems and features:
 *    [A-Za-z0-9][A-Za-z0-9._+-]*, at most 64 bytes. Setting names: [a-z0-9][a-z0-9-]*, at most
 *    64 bytes, not "include" (a nix.conf directive). Cache names: [a-z0-9][a-z0-9-]*, at most 63.
 *  - A list-valued setting is joined with single spaces; its items must be non-empty and hold no
 *    white space. max-jobs takes an unsigned integer, auto or fit; cores an unsigned integer or
 *    fit; other settings any scalar, kept as written.
 *  - Builder URIs: ssh:// or ssh-ng://, then a host, with only [A-Za-z0-9@.:/?=&%+~_[]-].
 *    Host keys: exactly "TYPE BASE64" (no comment), TYPE one of ssh-ed25519,
 *    ecdsa-sha2-nistp256/384/521, ssh-rsa, and the decoded blob must be an SSH public key of
 *    that type. identity: {sealed: BASE64} or an absolute path without white space.
 *  - Cachix public keys: NAME.cachix.org-1:BASE64 of 32 bytes, NAME being the cache's own name.
 *    A cache's host (the netrc machine its token is for) only next to an auth-token.
 *  - Sealed values: standard base64 with padding, decoding to crypto_box_SEALBYTES + 1 ..
 *    PROFILE_MAX_SEALED bytes (more is -E2BIG).
 *  - Values out of range and every other schema violation are -EBADMSG; -E2BIG is kept for the
 *    limits below. Structural errors (YAML syntax, aliases, anchors, tags, nesting, control
 *    characters, more than one document) are found in a first pass over the whole document, so
 *    they are reported before any schema error; a "nixprov" number other than 1 comes next,
 *    before the schema errors of the keys it would explain. Parsing stops at the first error. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "profile_health.h"

#define PROFILE_SCHEMA 1
#define PROFILE_MAX_BYTES (1024 * 1024) /* one document */
#define PROFILE_MAX_DEPTH 8             /* nested mappings and sequences */
#define PROFILE_MAX_MACHINES 10000      /* machines: */
#define PROFILE_MAX_GROUPS 256          /* groups: */
#define PROFILE_MAX_SETTINGS 256        /* nix.settings entries */
#define PROFILE_MAX_SETTING_ITEMS 64    /* items of one list-valued setting */
#define PROFILE_MAX_BUILDERS 64
#define PROFILE_MAX_CACHES 64
#define PROFILE_MAX_NAMES 64       /* systems, supported- and mandatory-features */
#define PROFILE_MAX_SCALAR 16384   /* bytes of one scalar (a sealed SSH key fits) */
#define PROFILE_MAX_SEALED 8192    /* bytes of one sealed box, decoded */
#define PROFILE_CACHE_HOST_MAX 253 /* cachix[].host: a DNS name */
/* Lists of strings also stop at their limit with -E2BIG: PROFILE_MAX_NAMES items for systems and
 * features, PROFILE_MAX_SETTING_ITEMS for one setting. */

enum profile_strategy {
        PROFILE_STRATEGY_BINARY_CACHES,
        PROFILE_STRATEGY_SOURCE,
        PROFILE_STRATEGY_REMOTE_BUILDERS,
        _PROFILE_STRATEGY_MAX,
};

enum profile_rebuild_action {
        PROFILE_REBUILD_SWITCH,
        PROFILE_REBUILD_BOOT,
        PROFILE_REBUILD_TEST,
        _PROFILE_REBUILD_ACTION_MAX,
};

/* Where a value stood in the file, for messages after parsing (1-based). */
struct profile_location {
        unsigned line;
        unsigned column;
};

/* A secret: sealed to the device ({sealed: BASE64}) or, where allowed, a path on the device. */
enum profile_secret_kind {
        PROFILE_SECRET_NONE,
        PROFILE_SECRET_SEALED,
        PROFILE_SECRET_PATH,
};

struct profile_secret {
        enum profile_secret_kind kind;
        uint8_t *sealed; /* PROFILE_SECRET_SEALED: the crypto_box_seal output, decoded */
        size_t sealed_size;
        char *path; /* PROFILE_SECRET_PATH: an absolute path */
        struct profile_location location;
};

/* One nix.conf setting. A list in YAML is joined with single spaces, as nix.conf wants it.
 * "fit" is kept as is (max-jobs and cores only); the agent sizes it. Scalars are kept as
 * written: true stays "true", 10 stays "10". location is where the setting's key stands. */
#define PROFILE_NO_LIMIT UINT64_MAX

struct profile_setting {
        char *name;
        char *value;
        struct profile_location location;
};

struct profile_builder {
        char *uri; /* ssh://user@host or ssh-ng://user@host, with optional ?query */
        char **systems;
        size_t n_systems;
        uint64_t max_jobs;     /* default 1 */
        uint64_t speed_factor; /* default 1 */
        char **supported_features;
        size_t n_supported_features;
        char **mandatory_features;
        size_t n_mandatory_features;
        char *host_key;                 /* "ssh-ed25519 AAAA...": required */
        struct profile_secret identity; /* sealed private key, or a path; optional */
        bool required;                  /* default true */
        struct profile_location location;
};

struct profile_cache {
        char *name;                       /* Cachix cache name: NAME.cachix.org */
        char *public_key;                 /* "NAME.cachix.org-1:BASE64" */
        struct profile_secret auth_token; /* sealed only; optional (public caches) */
        /* The host the token is for, the "machine" of its netrc line: optional, only with an
         * auth-token; NULL means NAME.cachix.org. For a cache served elsewhere (a mirror, a
         * test's cache on 127.0.0.1), which the profile's own substituters then name: the
         * plan adds no https://NAME.cachix.org for it. A host name or IPv4 address:
         * [A-Za-z0-9][A-Za-z0-9.-]*, at most PROFILE_CACHE_HOST_MAX bytes, no port (netrc
         * matches the host alone). */
        char *host;
        struct profile_location location;
};

struct profile {
        uint64_t schema; /* always PROFILE_SCHEMA once parsed */
        uint64_t serial;
        int64_t expires; /* seconds since the epoch, UTC */
        char **machines; /* 32 lowercase hexadecimal digits each; NULL when not given */
        size_t n_machines;
        char **groups;
        size_t n_groups;
        enum profile_strategy strategy;

        struct profile_setting *settings;
        size_t n_settings;
        /* nix.fallback-local (default false): with strategy remote-builders, when no builder
         * answers the probe, build locally (true) or stop with "builders unusable" (false). */
        bool fallback_local;
        /* nix.local-builds (default false): with strategy remote-builders, while at least one
         * builder answers, the device also builds itself (true: max-jobs as nix.settings and
         * the preset say) or builds nothing locally (false: max-jobs = 0, whatever
         * nix.settings.max-jobs says; that value then sizes only the fallback). */
        bool local_builds;

        struct profile_builder *builders;
        size_t n_builders;

        struct profile_cache *caches;
        size_t n_caches;

        struct {
                char *flake;                        /* NULL: the local /etc/nixos configuration */
                enum profile_rebuild_action action; /* default switch */
                uint64_t timeout;                   /* seconds, default 7200 */
                /* rebuild.max-local-builds: the pre-flight refuses a build that would compile
                 * more derivations on the device; PROFILE_NO_LIMIT when not set. */
                uint64_t max_local_builds;
                /* The agent may reboot the device (default false): into a new kernel or
                 * initrd after a switch, or into the previous system after a failed boot. */
                bool allow_reboot;
        } rebuild;

        struct {
                uint64_t interval; /* seconds, default 30 */
        } report;

        struct profile_health health; /* health: (profile_health.h) */
};

#define PROFILE_ERROR_FILE_MAX 256
#define PROFILE_ERROR_KEY_MAX 128
#define PROFILE_ERROR_MESSAGE_MAX 256

/* Where and why parsing failed. key is the path of the offending node: keys joined with dots,
 * list items by their index counted from 0 ("builders[2].host-key", "nix.settings.cores",
 * "machines[3]"); empty at the top of the document. A missing key is reported at the start of
 * the mapping that lacks it, with the missing key's path. Characters a terminal could act on
 * are shown as '?' in key, and values quoted in message are cut to 48 bytes. */
struct profile_error {
        char file[PROFILE_ERROR_FILE_MAX];
        unsigned line;   /* 1-based; 0 when not tied to a place (a size limit) */
        unsigned column; /* 1-based */
        char key[PROFILE_ERROR_KEY_MAX];
        char message[PROFILE_ERROR_MESSAGE_MAX];
};

/* Parses data (size bytes, need not be NUL-terminated) read from filename (used in messages
 * only; may be NULL). On success *ret belongs to the caller and *ret_error is untouched. On
 * failure *ret is untouched, fills *ret_error (when not NULL) and returns -EBADMSG (malformed
 * YAML or a schema violation, including values out of range), -E2BIG (a size, list or nesting
 * limit), -EPROTONOSUPPORT (another schema number), -ENOMEM, or -EINVAL (data NULL with a
 * non-zero size). */
int profile_parse(const char *data, size_t size, const char *filename, struct profile **ret,
                  struct profile_error *ret_error);

/* Formats an error as "FILE:LINE:COLUMN: KEY: MESSAGE" (omitting what is empty, and LINE:COLUMN
 * when line is 0) into buf, truncated to size bytes. Returns buf. */
char *profile_error_format(const struct profile_error *error, char *buf, size_t size);

/* Frees p and everything it holds (sealed bytes are wiped first). Accepts NULL; returns NULL. */
struct profile *profile_free(struct profile *p);
DEFINE_POINTER_CLEANUP(profile, profile_free)

/* "binary-caches", "source", ...; NULL for a value out of range. */
const char *profile_strategy_to_string(enum profile_strategy s);
const char *profile_rebuild_action_to_string(enum profile_rebuild_action a);

/* A fleet group's name, as profiles and the agent's configuration write it:
 * [a-z0-9][a-z0-9._-]*, at most PROFILE_GROUP_NAME_MAX bytes. */
#define PROFILE_GROUP_NAME_MAX 64
bool profile_group_name_valid(const char *name);

/* Looks a setting up by name; NULL when the profile does not set it. */
const struct profile_setting *profile_find_setting(const struct profile *p, const char *name);
