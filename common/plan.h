/* SPDX-License-Identifier: MIT */
#pragma once

/* The plan: what the agent will write, computed from a verified profile and the device's
 * hardware. Pure logic: no files, no network, no processes, no printing.
 *
 * The settings are built in this order, each step by setting name:
 *
 *  1. The strategy preset (a static table per strategy, values from the project's source
 *     document):
 *       binary-caches    substituters = cache.nixos.org, nix-community, cuda-maintainers and
 *                        devenv (Cachix), trusted-public-keys = their keys, max-jobs = auto,
 *                        cores = 0, builders-use-substitutes, keep-outputs, keep-derivations,
 *                        fallback = true, connect-timeout = 10, stalled-download-timeout = 300
 *       source           substituters = cache.nixos.org and its key only, max-jobs = auto,
 *                        cores = 0
 *       remote-builders  the binary-caches preset (builders come from the profile)
 *  2. The profile's nix.settings, key by key: a key the preset has is replaced where it stands;
 *     a new key is appended, in the profile's order.
 *  3. Each Cachix cache appends https://NAME.cachix.org to substituters and its public key to
 *     trusted-public-keys, whichever value those have by now (the preset's, or the profile's own
 *     as written); a word already there is not repeated. A cache with its own host (served from
 *     a mirror, profile_cache.host) adds its key only: the profile's substituters name it.
 *  4. When the profile lists builders: builders = @/etc/nix/nixprov-machines (PLAN_MACHINES_FILE).
 *     A profile that lists builders and also sets "builders" itself is refused (-EINVAL): one of
 *     the two would be silently ignored.
 *  5. "fit" for max-jobs and cores is sized to the hardware (plan_fit(), rule below); "auto" is
 *     left to Nix.
 *  6. With strategy remote-builders and builders listed, where builds run
 *     (plan_hardware.builders_answering says how many builders answered the probe; the agent
 *     passes the number listed before the probe):
 *       - at least one answers, nix.local-builds false (the default): max-jobs = 0, whatever
 *         the preset or nix.settings.max-jobs say: the device builds nothing itself
 *         (PLAN_LOCAL_BUILDS_NONE). nix.settings.max-jobs then only sizes a fallback;
 *       - at least one answers, nix.local-builds true: max-jobs as steps 1-5 made it, and
 *         Nix shares the builds between the device and the builders (PLAN_LOCAL_BUILDS_ALSO);
 *       - none answers, nix.fallback-local true: max-jobs as steps 1-5 made it, except that
 *         0 (which would build nothing at all) becomes fit's number (PLAN_LOCAL_BUILDS_FALLBACK);
 *       - none answers, nix.fallback-local false: max-jobs as steps 1-5 made it, and the plan
 *         says PLAN_LOCAL_BUILDS_UNUSABLE: the agent stops before writing it (exit 6).
 *     Any other strategy, no builders, or hw NULL: PLAN_LOCAL_BUILDS_AS_SET, max-jobs as
 *     steps 1-5 made it.
 *
 * The fit rule. A build job gets about 1 GiB of memory (PLAN_FIT_MEMORY_PER_JOB) after
 * 512 MiB (PLAN_FIT_MEMORY_RESERVE) are kept for the system, and the CPUs are shared as a
 * square: about as many jobs as cores per job, so that both many small derivations and one big
 * one (a kernel, a compiler) use the machine, and jobs * cores never exceeds the CPU count:
 *
 *     jobs  = max(1, min(floor(sqrt(cpus)), (memory - 512 MiB) / 1 GiB))
 *     cores = max(1, cpus / jobs)
 *
 * 1 CPU / 1 GiB: 1 job of 1 core.  2 CPUs / 4 GiB: 1 job of 2 cores.  4 CPUs / 8 GiB: 2 jobs of
 * 2 cores.  16 CPUs / 64 GiB: 4 jobs of 4 cores.  16 CPUs / 2 GiB: 1 job of 16 cores.
 * An unknown count (0 CPUs, or 0 bytes of memory) counts as 1 CPU, or as no room for a second
 * job.
 *
 * Values are refused (-EINVAL) when nix.conf cannot carry them: a control character, a '#'
 * (nix.conf cuts a line at '#'), or a setting name outside [A-Za-z0-9._-] or named "include".
 * The profile parser already refuses all of these; the plan does not rely on it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "profile.h"

#define PLAN_MACHINES_FILE "/etc/nix/nixprov-machines"
/* Where the agent writes a builder's sealed SSH identity once it has opened it; N is the
 * builder's index in the profile, counted from 0 as in "builders[N]". */
#define PLAN_SEALED_IDENTITY_FORMAT "/etc/nix/nixprov-builder-%zu.key"

#define PLAN_FIT_MEMORY_RESERVE (UINT64_C(512) << 20)
#define PLAN_FIT_MEMORY_PER_JOB (UINT64_C(1) << 30)

#define PLAN_MAX_SETTINGS 512      /* presets plus PROFILE_MAX_SETTINGS, with room */
#define PLAN_MAX_VALUE (64 * 1024) /* one setting's value, caches appended */

struct plan_hardware {
        unsigned cpus;         /* online CPUs; 0 when unknown */
        uint64_t memory_bytes; /* physical memory; 0 when unknown */
        /* Builders that answered the probe (the builders phase re-plans with the number that
         * answered; before it, the agent passes the number of builders in the profile). Step 6
         * above. */
        unsigned builders_answering;
};

/* One nix.conf setting, as nix.conf writes it: list values joined with single spaces. */
struct plan_setting {
        char *name;
        char *value;
};

enum plan_builder_protocol {
        PLAN_BUILDER_SSH,    /* ssh:// */
        PLAN_BUILDER_SSH_NG, /* ssh-ng:// */
};

struct plan_builder {
        size_t index; /* in the profile's builders list ("builders[N]"): it stays when
                       * plan_remove_builder() moves the builder up */
        char *uri;    /* as in the profile: ssh://[user@]host[:port][?query] or ssh-ng://... */
        enum plan_builder_protocol protocol;
        char *user; /* the part before '@', NULL when the URI names none */
        char *host; /* the rest of the URI after "user@": host[:port][?query] */
        char **systems;
        size_t n_systems;
        uint64_t max_jobs;
        uint64_t speed_factor;
        char **supported_features;
        size_t n_supported_features;
        char **mandatory_features;
        size_t n_mandatory_features;
        char *host_key;       /* "ssh-ed25519 AAAA..." as pinned in the profile */
        char *identity_path;  /* the profile's path, PLAN_SEALED_IDENTITY_FORMAT, or NULL */
        bool identity_sealed; /* identity_path is where the agent must write the opened key */
        bool required;
};

/* Where the builds of a remote-builders profile run: step 6 above. */
enum plan_local_builds {
        PLAN_LOCAL_BUILDS_AS_SET,   /* not decided by the plan: max-jobs as the settings say */
        PLAN_LOCAL_BUILDS_NONE,     /* a builder answers: remotely only, max-jobs = 0 */
        PLAN_LOCAL_BUILDS_ALSO,     /* a builder answers, nix.local-builds: true */
        PLAN_LOCAL_BUILDS_FALLBACK, /* none answers, nix.fallback-local: true: locally */
        PLAN_LOCAL_BUILDS_UNUSABLE, /* none answers, nix.fallback-local: false: nowhere */
        _PLAN_LOCAL_BUILDS_MAX,
};

struct plan_cache {
        char *name;          /* NAME of NAME.cachix.org */
        char *public_key;    /* NAME.cachix.org-1:... */
        bool has_auth_token; /* sealed token: the netrc and the secrets include are needed */
        char *host;          /* the netrc machine of the token: the profile's host, or
                              * NAME.cachix.org */
};

struct plan {
        enum profile_strategy strategy;

        struct plan_setting *settings; /* in nix.conf order */
        size_t n_settings;

        struct plan_builder *builders; /* in the profile's order */
        size_t n_builders;

        struct plan_cache *caches;
        size_t n_caches;

        /* What fit resolved to (also when the profile did not ask for fit). */
        uint64_t fit_jobs;
        uint64_t fit_cores;
        enum plan_local_builds local_builds; /* step 6 */
};

/* Builds the plan for profile p on hardware hw (NULL: nothing known). Copies what it keeps;
 * p may be freed afterwards. On success *ret belongs to the caller (plan_free()). Returns 0,
 * -EINVAL (a value nix.conf or the machines file cannot carry, an unknown strategy, a builder
 * URI that is not ssh:// or ssh-ng://, a builder without systems, "builders" set next to a
 * builders list), -E2BIG (past PLAN_MAX_SETTINGS or PLAN_MAX_VALUE) or -ENOMEM. */
int plan_build(const struct profile *p, const struct plan_hardware *hw, struct plan **ret);

struct plan *plan_free(struct plan *plan);
DEFINE_POINTER_CLEANUP(plan, plan_free)

/* Removes plan->builders[index] (a builder the builders phase left out); the others keep their
 * order. The "builders" setting stays: the machines file is still written, with fewer lines.
 * Returns 0, or -EINVAL for an index out of range. */
int plan_remove_builder(struct plan *plan, size_t index);

/* The fit rule above, alone. */
void plan_fit(const struct plan_hardware *hw, uint64_t *ret_jobs, uint64_t *ret_cores);

/* Looks a setting of the plan up by name; NULL when the plan has none. */
const char *plan_get(const struct plan *plan, const char *name);

/* True when some cache carries an auth token (the secrets include is then needed). */
bool plan_needs_secrets(const struct plan *plan);
