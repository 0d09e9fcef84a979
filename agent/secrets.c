/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "secrets.h"
#include "util.h"

#define DHALL_FORMAT                                                                               \
        "{ authToken = \"%s\"\n"                                                                   \
        ", hostname = \"https://cachix.org\"\n"                                                    \
        ", binaryCaches = [] : List { name : Text, secretKey : Text }\n"                           \
        "}\n"
#define SECRETS_CONF_TEXT "netrc-file = " SECRETS_NETRC_FILE "\n"

static void buf_wipe(struct secret_buf *b)
{
        sodium_free(b->data); /* wipes; accepts NULL */
        *b = (struct secret_buf){};
}

void secrets_done(struct secrets *s)
{
        for (size_t i = 0; i < ELEMENTSOF(s->tokens); i++)
                buf_wipe(&s->tokens[i]);
        for (size_t i = 0; i < ELEMENTSOF(s->identities); i++)
                buf_wipe(&s->identities[i]);
        buf_wipe(&s->netrc);
        buf_wipe(&s->dhall);
}

const char *secrets_identity(const struct secrets *s, size_t index)
{
        if (index >= ELEMENTSOF(s->identities))
                return NULL;
        return s->identities[index].data;
}

bool secrets_have_netrc(const struct secrets *s)
{
        for (size_t i = 0; i < ELEMENTSOF(s->tokens); i++)
                if (s->tokens[i].data)
                        return true;
        return false;
}

/* A token goes into a netrc line and a Dhall string: Cachix tokens are JWTs, base64url and dots. */
static bool token_valid(const char *t, size_t size)
{
        return size > 0 && size <= SECRETS_TOKEN_MAX && strlen(t) == size &&
               string_is_safe(t, SECRETS_TOKEN_MAX, "._~+/=-");
}

static int open_one(const struct devicekey *k, const struct profile_secret *secret, const char *key,
                    struct secret_buf *ret, char *error)
{
        uint8_t *plain = NULL;
        size_t size = 0;
        int r;

        r = devicekey_open_sealed(k, secret->sealed, secret->sealed_size, &plain, &size);
        if (r == -EBADMSG)
                snprintf(error, SECRETS_ERROR_MAX,
                         "%s: cannot be opened with this device's box key: sealed to another "
                         "device, or changed",
                         key);
        else if (r < 0)
                snprintf(error, SECRETS_ERROR_MAX, "%s: %s", key, strerror(-r));
        if (r < 0)
                return r;
        ret->data = (char *)plain;
        ret->size = size;
        return 0;
}

int secrets_open(const struct profile *p, const struct devicekey *k, struct secrets *s,
                 char error[static SECRETS_ERROR_MAX])
{
        char key[64];
        int r = 0;

        for (size_t i = 0; r >= 0 && i < p->n_caches && i < PROFILE_MAX_CACHES; i++) {
                if (p->caches[i].auth_token.kind != PROFILE_SECRET_SEALED)
                        continue;
                snprintf(key, sizeof(key), "cachix[%zu].auth-token", i);
                r = open_one(k, &p->caches[i].auth_token, key, &s->tokens[i], error);
                if (r >= 0 && !token_valid(s->tokens[i].data, s->tokens[i].size)) {
                        snprintf(error, SECRETS_ERROR_MAX,
                                 "%s: the opened token is not a Cachix token (empty, too long, or "
                                 "a character outside [A-Za-z0-9._~+/=-])",
                                 key);
                        r = -EBADMSG;
                }
        }
        for (size_t i = 0; r >= 0 && i < p->n_builders && i < PROFILE_MAX_BUILDERS; i++) {
                if (p->builders[i].identity.kind != PROFILE_SECRET_SEALED)
                        continue;
                snprintf(key, sizeof(key), "builders[%zu].identity", i);
                r = open_one(k, &p->builders[i].identity, key, &s->identities[i], error);
                if (r >= 0 && strlen(s->identities[i].data) != s->identities[i].size) {
                        snprintf(error, SECRETS_ERROR_MAX, "%s: the opened key holds a NUL byte",
                                 key);
                        r = -EBADMSG;
                }
        }
        if (r < 0)
                secrets_done(s);
        return r;
}

static int add(struct write_item *items, size_t max, size_t *n, const char *path, const char *data,
               size_t size)
{
        if (*n >= max)
                return -E2BIG;
        items[(*n)++] = (struct write_item){path, data, size, 0600};
        return 0;
}

int secrets_items(const struct plan *plan, struct secrets *s, struct write_item *items, size_t max,
                  size_t *n)
{
        const struct secret_buf *first = NULL;
        size_t netrc_max = 0, len = 0;
        int r;

        for (size_t i = 0; i < plan->n_caches && i < PROFILE_MAX_CACHES; i++)
                if (s->tokens[i].data) {
                        netrc_max += strlen("machine  password \n") + strlen(plan->caches[i].host) +
                                     s->tokens[i].size;
                        first = first ?: &s->tokens[i];
                }
        if (first) {
                s->netrc.data = sodium_malloc(netrc_max + 1);
                s->dhall.data = sodium_malloc(sizeof(DHALL_FORMAT) + first->size);
                if (!s->netrc.data || !s->dhall.data)
                        return -ENOMEM;
                for (size_t i = 0; i < plan->n_caches && i < PROFILE_MAX_CACHES; i++)
                        if (s->tokens[i].data)
                                len += (size_t)snprintf(s->netrc.data + len, netrc_max + 1 - len,
                                                        "machine %s password %s\n",
                                                        plan->caches[i].host, s->tokens[i].data);
                s->netrc.size = len;
                s->dhall.size = (size_t)snprintf(s->dhall.data, sizeof(DHALL_FORMAT) + first->size,
                                                 DHALL_FORMAT, first->data);
                r = add(items, max, n, SECRETS_NETRC_FILE, s->netrc.data, s->netrc.size);
                if (r >= 0)
                        r = add(items, max, n, SECRETS_CONF_FILE, SECRETS_CONF_TEXT,
                                strlen(SECRETS_CONF_TEXT));
                if (r >= 0)
                        r = add(items, max, n, SECRETS_CACHIX_DHALL_FILE, s->dhall.data,
                                s->dhall.size);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < plan->n_builders; i++) {
                struct secret_buf *id;

                /* By the builder's place in the profile: the builders phase may have left
                 * builders before it out of the plan. */
                if (plan->builders[i].index >= PROFILE_MAX_BUILDERS)
                        continue;
                id = &s->identities[plan->builders[i].index];
                if (!id->data || !plan->builders[i].identity_sealed)
                        continue;
                /* ssh refuses a private key file without its final newline; seal drops one. */
                if (id->size == 0 || id->data[id->size - 1] != '\n') {
                        char *with = sodium_malloc(id->size + 2);
                        if (!with)
                                return -ENOMEM;
                        memcpy(with, id->data, id->size);
                        with[id->size] = '\n';
                        with[id->size + 1] = '\0';
                        sodium_free(id->data);
                        id->data = with;
                        id->size++;
                }
                r = add(items, max, n, plan->builders[i].identity_path, id->data, id->size);
                if (r < 0)
                        return r;
        }
        return 0;
}
