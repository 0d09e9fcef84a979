/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"

struct preset_setting {
        const char *name;
        const char *value;
};

/* From the project's source document. The keys were checked against the caches' own
 * documentation; cache.nixos.org's is also Nix's built-in default. */
static const struct preset_setting preset_binary_caches[] = {
    {"substituters", "https://cache.nixos.org https://nix-community.cachix.org "
                     "https://cuda-maintainers.cachix.org https://devenv.cachix.org"},
    {"trusted-public-keys",
     "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= "
     "nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs= "
     "cuda-maintainers.cachix.org-1:0dq3bujKpuEPMCX6U4WylrUDZ9JyUG0VpVZa7CNfq5E= "
     "devenv.cachix.org-1:w1cLUi8dv3hnoSPGAuibQv+f9TZLr6cv/Hm9XgU50cw="},
    {"max-jobs", "auto"},
    {"cores", "0"},
    {"builders-use-substitutes", "true"},
    {"keep-outputs", "true"},
    {"keep-derivations", "true"},
    {"fallback", "true"},
    {"connect-timeout", "10"},
    {"stalled-download-timeout", "300"},
};

static const struct preset_setting preset_source[] = {
    {"substituters", "https://cache.nixos.org"},
    {"trusted-public-keys", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="},
    {"max-jobs", "auto"},
    {"cores", "0"},
};

static const struct {
        const struct preset_setting *settings;
        size_t n_settings;
} presets[_PROFILE_STRATEGY_MAX] = {
    [PROFILE_STRATEGY_BINARY_CACHES] = {preset_binary_caches, ELEMENTSOF(preset_binary_caches)},
    [PROFILE_STRATEGY_SOURCE] = {preset_source, ELEMENTSOF(preset_source)},
    /* The builders themselves come from the profile; max-jobs = 0 is decided below. */
    [PROFILE_STRATEGY_REMOTE_BUILDERS] = {preset_binary_caches, ELEMENTSOF(preset_binary_caches)},
};

static void strv_free(char **v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void plan_builder_done(struct plan_builder *b)
{
        free(b->uri);
        free(b->user);
        free(b->host);
        strv_free(b->systems, b->n_systems);
        strv_free(b->supported_features, b->n_supported_features);
        strv_free(b->mandatory_features, b->n_mandatory_features);
        free(b->host_key);
        free(b->identity_path);
}

int plan_remove_builder(struct plan *plan, size_t index)
{
        if (!plan || index >= plan->n_builders)
                return -EINVAL;
        plan_builder_done(&plan->builders[index]);
        memmove(&plan->builders[index], &plan->builders[index + 1],
                (plan->n_builders - index - 1) * sizeof(*plan->builders));
        plan->n_builders--;
        return 0;
}

struct plan *plan_free(struct plan *plan)
{
        if (!plan)
                return NULL;
        for (size_t i = 0; i < plan->n_settings; i++) {
                free(plan->settings[i].name);
                free(plan->settings[i].value);
        }
        free(plan->settings);
        for (size_t i = 0; i < plan->n_builders; i++)
                plan_builder_done(&plan->builders[i]);
        free(plan->builders);
        for (size_t i = 0; i < plan->n_caches; i++) {
                free(plan->caches[i].name);
                free(plan->caches[i].public_key);
                free(plan->caches[i].host);
        }
        free(plan->caches);
        free(plan);
        return NULL;
}

static bool is_control(unsigned char c)
{
        return c < 0x20 || c == 0x7f;
}

/* Anything nix.conf can carry on one line: no control character (a newline would start a
 * new setting), no '#' (nix.conf drops the rest of a line from '#'). */
static bool value_is_valid(const char *s)
{
        if (!s)
                return false;
        for (const unsigned char *c = (const unsigned char *)s; *c; c++)
                if (is_control(*c) || *c == '#')
                        return false;
        return true;
}

/* One field of the machines file: non-empty, nothing value_is_valid() refuses, no white space
 * (the field separator), no ';' (Nix splits a builders list there), and no character of extra
 * (',' for list items). */
static bool word_is_valid(const char *s, const char *extra)
{
        if (!s || !*s || !value_is_valid(s))
                return false;
        for (const char *c = s; *c; c++)
                if (*c == ' ' || *c == ';' || strchr(extra, *c))
                        return false;
        return true;
}

static bool name_is_valid(const char *s)
{
        /* "include" would read as the nix.conf directive. */
        return s && string_is_safe(s, 128, "._-") && !streq(s, "include");
}

static struct plan_setting *plan_find(const struct plan *plan, const char *name)
{
        for (size_t i = 0; i < plan->n_settings; i++)
                if (streq(plan->settings[i].name, name))
                        return &plan->settings[i];
        return NULL;
}

const char *plan_get(const struct plan *plan, const char *name)
{
        const struct plan_setting *s = plan_find(plan, name);

        return s ? s->value : NULL;
}

bool plan_needs_secrets(const struct plan *plan)
{
        for (size_t i = 0; i < plan->n_caches; i++)
                if (plan->caches[i].has_auth_token)
                        return true;
        return false;
}

/* Replaces name's value where it stands, or appends name. */
static int plan_set(struct plan *plan, const char *name, const char *value)
{
        struct plan_setting *s = plan_find(plan, name);
        char *copy;

        if (!name_is_valid(name) || !value_is_valid(value))
                return -EINVAL;
        if (strlen(value) > PLAN_MAX_VALUE)
                return -E2BIG;
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        if (s) {
                free(s->value);
                s->value = copy;
                return 0;
        }
        if (plan->n_settings >= PLAN_MAX_SETTINGS) {
                free(copy);
                return -E2BIG;
        }
        s = &plan->settings[plan->n_settings];
        s->name = strdup(name);
        if (!s->name) {
                free(copy);
                return -ENOMEM;
        }
        s->value = copy;
        plan->n_settings++;
        return 0;
}

static bool list_has_word(const char *list, const char *word)
{
        size_t n = strlen(word);

        for (const char *p = list; *p;) {
                size_t len;

                p += strspn(p, " \t");
                len = strcspn(p, " \t");
                if (len == n && memcmp(p, word, n) == 0)
                        return true;
                p += len;
        }
        return false;
}

/* Adds word to the space-separated list setting name, unless it is there already. */
static int plan_list_add(struct plan *plan, const char *name, const char *word)
{
        struct plan_setting *s = plan_find(plan, name);
        _cleanup_(buf_free) struct buf b = BUF_INIT(PLAN_MAX_VALUE);
        int r;

        if (!word_is_valid(word, ""))
                return -EINVAL;
        if (!s)
                return plan_set(plan, name, word);
        if (list_has_word(s->value, word))
                return 0;
        r = buf_puts(&b, s->value);
        if (r >= 0 && b.size > 0 && b.data[b.size - 1] != ' ')
                r = buf_puts(&b, " ");
        if (r >= 0)
                r = buf_puts(&b, word);
        if (r < 0)
                return r;
        free(s->value);
        s->value = buf_steal(&b, NULL);
        return s->value ? 0 : -ENOMEM;
}

static uint64_t isqrt(uint64_t n)
{
        uint64_t r = 0;

        while ((r + 1) <= n / (r + 1))
                r++;
        return r;
}

void plan_fit(const struct plan_hardware *hw, uint64_t *ret_jobs, uint64_t *ret_cores)
{
        uint64_t cpus = hw && hw->cpus > 0 ? hw->cpus : 1;
        uint64_t memory = hw ? hw->memory_bytes : 0;
        uint64_t memory_jobs, jobs;

        memory_jobs = memory > PLAN_FIT_MEMORY_RESERVE
                          ? (memory - PLAN_FIT_MEMORY_RESERVE) / PLAN_FIT_MEMORY_PER_JOB
                          : 0;
        jobs = isqrt(cpus);
        if (memory_jobs < jobs)
                jobs = memory_jobs;
        if (jobs < 1)
                jobs = 1;
        *ret_jobs = jobs;
        *ret_cores = cpus / jobs > 0 ? cpus / jobs : 1;
}

static int strv_copy(char *const *v, size_t n, bool (*valid)(const char *), char ***ret)
{
        char **copy;

        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        copy = calloc(n, sizeof(char *));
        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!valid(v[i])) {
                        strv_free(copy, i);
                        return -EINVAL;
                }
                copy[i] = strdup(v[i]);
                if (!copy[i]) {
                        strv_free(copy, i);
                        return -ENOMEM;
                }
        }
        *ret = copy;
        return 0;
}

static bool list_item_is_valid(const char *s)
{
        return word_is_valid(s, ",");
}

static const struct {
        const char *prefix;
        enum plan_builder_protocol protocol;
} builder_schemes[] = {
    {"ssh://", PLAN_BUILDER_SSH},
    {"ssh-ng://", PLAN_BUILDER_SSH_NG},
};

/* ssh://[user@]host[:port][?query]: the user, and the rest as the host. */
static int builder_parse_uri(struct plan_builder *b)
{
        const char *rest = NULL, *at;
        size_t authority;

        if (!word_is_valid(b->uri, ""))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(builder_schemes); i++)
                if (strncmp(b->uri, builder_schemes[i].prefix, strlen(builder_schemes[i].prefix)) ==
                    0) {
                        rest = b->uri + strlen(builder_schemes[i].prefix);
                        b->protocol = builder_schemes[i].protocol;
                        break;
                }
        if (!rest)
                return -EINVAL;

        authority = strcspn(rest, "/?");
        at = memchr(rest, '@', authority);
        if (at) {
                if (at == rest)
                        return -EINVAL;
                b->user = strndup(rest, (size_t)(at - rest));
                if (!b->user)
                        return -ENOMEM;
                rest = at + 1;
        }
        if (*rest == '\0' || *rest == ':' || *rest == '/' || *rest == '?' || strchr(rest, '@'))
                return -EINVAL;
        b->host = strdup(rest);
        return b->host ? 0 : -ENOMEM;
}

static int builder_copy(const struct profile_builder *src, size_t index, struct plan_builder *b)
{
        int r;

        b->index = index;
        b->uri = strdup(src->uri ? src->uri : "");
        b->host_key = strdup(src->host_key ? src->host_key : "");
        if (!b->uri || !b->host_key)
                return -ENOMEM;
        r = builder_parse_uri(b);
        if (r < 0)
                return r;
        /* The host key goes to the machines file base64-encoded, but must still be one line. */
        if (!*b->host_key || !value_is_valid(b->host_key))
                return -EINVAL;
        if (src->n_systems == 0)
                return -EINVAL;
        r = strv_copy(src->systems, src->n_systems, list_item_is_valid, &b->systems);
        if (r < 0)
                return r;
        b->n_systems = src->n_systems;
        r = strv_copy(src->supported_features, src->n_supported_features, list_item_is_valid,
                      &b->supported_features);
        if (r < 0)
                return r;
        b->n_supported_features = src->n_supported_features;
        r = strv_copy(src->mandatory_features, src->n_mandatory_features, list_item_is_valid,
                      &b->mandatory_features);
        if (r < 0)
                return r;
        b->n_mandatory_features = src->n_mandatory_features;
        b->max_jobs = src->max_jobs;
        b->speed_factor = src->speed_factor;
        b->required = src->required;

        switch (src->identity.kind) {
        case PROFILE_SECRET_NONE:
                break;
        case PROFILE_SECRET_PATH:
                if (!src->identity.path || src->identity.path[0] != '/' ||
                    !word_is_valid(src->identity.path, ""))
                        return -EINVAL;
                b->identity_path = strdup(src->identity.path);
                if (!b->identity_path)
                        return -ENOMEM;
                break;
        case PROFILE_SECRET_SEALED:
                if (asprintf(&b->identity_path, PLAN_SEALED_IDENTITY_FORMAT, index) < 0) {
                        b->identity_path = NULL;
                        return -ENOMEM;
                }
                b->identity_sealed = true;
                break;
        default:
                return -EINVAL;
        }
        return 0;
}

static int cache_copy(const struct profile_cache *src, struct plan_cache *c)
{
        /* A cache name becomes a host name and a netrc word. */
        if (!src->name || !string_is_safe(src->name, 63, "-") ||
            !word_is_valid(src->public_key, ""))
                return -EINVAL;
        c->name = strdup(src->name);
        c->public_key = strdup(src->public_key);
        if (!c->name || !c->public_key)
                return -ENOMEM;
        c->has_auth_token = src->auth_token.kind == PROFILE_SECRET_SEALED;
        /* The host becomes a netrc word too. */
        if (src->host && (!string_is_safe(src->host, PROFILE_CACHE_HOST_MAX, ".-") ||
                          src->host[0] == '.' || src->host[0] == '-'))
                return -EINVAL;
        if (src->host)
                c->host = strdup(src->host);
        else if (asprintf(&c->host, "%s.cachix.org", src->name) < 0)
                c->host = NULL;
        if (!c->host)
                return -ENOMEM;
        return 0;
}

/* "fit" becomes the number plan_fit() gives; "auto" and numbers stay. */
static int plan_resolve_fit(struct plan *plan, const char *name, uint64_t fitted)
{
        const char *v = plan_get(plan, name);
        char number[32];

        if (!v || !streq(v, "fit"))
                return 0;
        snprintf(number, sizeof(number), "%" PRIu64, fitted);
        return plan_set(plan, name, number);
}

/* Steps 1 and 2: the strategy's preset, then the profile's own settings, key by key. */
static int plan_add_settings(struct plan *plan, const struct profile *p)
{
        int r;

        for (size_t i = 0; i < presets[p->strategy].n_settings; i++) {
                r = plan_set(plan, presets[p->strategy].settings[i].name,
                             presets[p->strategy].settings[i].value);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_settings; i++) {
                r = plan_set(plan, p->settings[i].name, p->settings[i].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Step 3: the caches, with their substituters and public keys. */
static int plan_add_caches(struct plan *plan, const struct profile *p)
{
        int r;

        if (p->n_caches > 0) {
                plan->caches = calloc(p->n_caches, sizeof(struct plan_cache));
                if (!plan->caches)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_caches; i++) {
                char url[128];

                r = cache_copy(&p->caches[i], &plan->caches[plan->n_caches]);
                plan->n_caches++;
                if (r < 0)
                        return r;
                /* A cache served from its own host (a mirror) is named in the profile's
                 * substituters; NAME.cachix.org would be a URL the token is not for. */
                if (!p->caches[i].host) {
                        snprintf(url, sizeof(url), "https://%s.cachix.org", p->caches[i].name);
                        r = plan_list_add(plan, "substituters", url);
                        if (r < 0)
                                return r;
                }
                r = plan_list_add(plan, "trusted-public-keys", p->caches[i].public_key);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Step 4: the builders, and the builders setting that names their machines file. */
static int plan_add_builders(struct plan *plan, const struct profile *p)
{
        int r;

        if (p->n_builders > 0) {
                plan->builders = calloc(p->n_builders, sizeof(struct plan_builder));
                if (!plan->builders)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_builders; i++) {
                r = builder_copy(&p->builders[i], i, &plan->builders[plan->n_builders]);
                plan->n_builders++;
                if (r < 0)
                        return r;
        }
        if (plan->n_builders > 0)
                return plan_set(plan, "builders", "@" PLAN_MACHINES_FILE);
        return 0;
}

/* Step 6: where builds run, with strategy remote-builders (plan.h). */
static int plan_decide_local_builds(struct plan *plan, const struct profile *p,
                                    const struct plan_hardware *hw)
{
        const char *v;
        char number[32];

        if (plan->strategy != PROFILE_STRATEGY_REMOTE_BUILDERS || !hw || plan->n_builders == 0)
                return 0;
        if (hw->builders_answering > 0 && !p->local_builds) {
                plan->local_builds = PLAN_LOCAL_BUILDS_NONE;
                return plan_set(plan, "max-jobs", "0");
        }
        if (hw->builders_answering > 0) {
                plan->local_builds = PLAN_LOCAL_BUILDS_ALSO;
                return 0;
        }
        if (!p->fallback_local) {
                plan->local_builds = PLAN_LOCAL_BUILDS_UNUSABLE;
                return 0;
        }
        plan->local_builds = PLAN_LOCAL_BUILDS_FALLBACK;
        /* max-jobs = 0 would build nothing at all: the fallback means local builds, sized to the
         * hardware. */
        v = plan_get(plan, "max-jobs");
        if (!v || !streq(v, "0"))
                return 0;
        snprintf(number, sizeof(number), "%" PRIu64, plan->fit_jobs);
        return plan_set(plan, "max-jobs", number);
}

int plan_build(const struct profile *p, const struct plan_hardware *hw, struct plan **ret)
{
        _cleanup_(plan_freep) struct plan *plan = NULL;
        int r;

        if (!p || !ret || (unsigned)p->strategy >= _PROFILE_STRATEGY_MAX)
                return -EINVAL;
        if (p->n_settings > PROFILE_MAX_SETTINGS || p->n_builders > PROFILE_MAX_BUILDERS ||
            p->n_caches > PROFILE_MAX_CACHES)
                return -E2BIG;
        if (p->n_builders > 0 && profile_find_setting(p, "builders"))
                return -EINVAL;

        plan = calloc(1, sizeof(*plan));
        if (!plan)
                return -ENOMEM;
        plan->strategy = p->strategy;
        plan->settings = calloc(PLAN_MAX_SETTINGS, sizeof(struct plan_setting));
        if (!plan->settings)
                return -ENOMEM;

        r = plan_add_settings(plan, p);
        if (r < 0)
                return r;
        r = plan_add_caches(plan, p);
        if (r < 0)
                return r;
        r = plan_add_builders(plan, p);
        if (r < 0)
                return r;

        /* Step 5: fit */
        plan_fit(hw, &plan->fit_jobs, &plan->fit_cores);
        r = plan_resolve_fit(plan, "max-jobs", plan->fit_jobs);
        if (r < 0)
                return r;
        r = plan_resolve_fit(plan, "cores", plan->fit_cores);
        if (r < 0)
                return r;

        r = plan_decide_local_builds(plan, p, hw);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(plan);
        return 0;
}
