/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "render.h"
#include "util.h"

#define HEADER_FORMAT                                                                              \
        "# Written by nixprov-agent from profile serial %" PRIu64 ".\n"                            \
        "# Do not edit: the next profile replaces this file.\n"

static bool has_control(const char *s)
{
        for (const unsigned char *c = (const unsigned char *)s; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return true;
        return false;
}

static int finish(struct buf *b, int r, char **ret_text)
{
        char *text;

        if (r < 0)
                return r;
        text = buf_steal(b, NULL);
        if (!text)
                return -ENOMEM;
        *ret_text = text;
        return 0;
}

static int put_settings(struct buf *b, const struct plan *plan)
{
        int r = 0;

        for (size_t i = 0; r >= 0 && i < plan->n_settings; i++) {
                const struct plan_setting *s = &plan->settings[i];

                /* One line each: a newline in a value would smuggle in another setting, a
                 * '#' would cut it short, and a name must be one word before the '='. */
                if (!*s->name || has_control(s->name) || strpbrk(s->name, " =#") ||
                    has_control(s->value) || strchr(s->value, '#'))
                        return -EINVAL;
                r = buf_printf(b, "%s = %s\n", s->name, s->value);
        }
        return r;
}

int render_nix_conf(const struct plan *plan, uint64_t serial, char **ret_text)
{
        _cleanup_(buf_free) struct buf b = BUF_INIT(RENDER_MAX_BYTES);
        int r;

        r = buf_printf(&b, HEADER_FORMAT, serial);
        if (r >= 0)
                r = put_settings(&b, plan);
        /* Missing secrets (not yet written, or removed) must not break Nix: "!include". */
        if (r >= 0 && plan_needs_secrets(plan))
                r = buf_puts(&b, "!include " RENDER_SECRETS_FILE "\n");
        return finish(&b, r, ret_text);
}

int render_nix_config_env(const struct plan *plan, char **ret_text)
{
        _cleanup_(buf_free) struct buf b = BUF_INIT(RENDER_MAX_BYTES);

        return finish(&b, put_settings(&b, plan), ret_text);
}

static int put_base64(struct buf *b, const char *s)
{
        size_t len = strlen(s), encoded_len;
        _cleanup_free_ char *encoded = NULL;

        if (len > RENDER_MAX_BYTES)
                return -E2BIG;
        encoded_len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
        encoded = malloc(encoded_len);
        if (!encoded)
                return -ENOMEM;
        sodium_bin2base64(encoded, encoded_len, (const unsigned char *)s, len,
                          sodium_base64_VARIANT_ORIGINAL);
        return buf_puts(b, encoded);
}

/* A field of the machines file: a word without white space or the characters Nix's parser
 * treats specially there (',' inside list fields, ';' between machines, '#' for comments). */
static bool machines_word_is_valid(const char *s)
{
        if (!s || !*s || has_control(s))
                return false;
        return strpbrk(s, " ,;#") == NULL;
}

static int put_machines_list(struct buf *b, char *const *items, size_t n)
{
        int r = 0;

        if (n == 0)
                return buf_puts(b, "-");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (!machines_word_is_valid(items[i]))
                        return -EINVAL;
                r = buf_printf(b, "%s%s", i > 0 ? "," : "", items[i]);
        }
        return r;
}

/* A builder's address, taken apart from plan_builder.host ("host[:port][?query]", the host
 * possibly a bracketed IPv6 address). */
struct builder_address {
        char host[RENDER_SSH_HOST_MAX + 1]; /* without brackets */
        uint64_t port;                      /* 0: none given */
        const char *query;                  /* into plan_builder.host: "?..." or "" */
};

static int builder_address_parse(const struct plan_builder *m, struct builder_address *ret)
{
        const char *h = m->host, *end, *after;
        size_t len;

        if (!h || !*h)
                return -EINVAL;
        if (h[0] == '[') {
                end = strchr(h, ']');
                if (!end)
                        return -EINVAL;
                h++;
                after = end + 1;
        } else {
                end = h + strcspn(h, ":?");
                after = end;
        }
        len = (size_t)(end - h);
        if (len == 0 || len > RENDER_SSH_HOST_MAX)
                return len == 0 ? -EINVAL : -E2BIG;
        memcpy(ret->host, h, len);
        ret->host[len] = '\0';
        ret->port = 0;
        if (*after == ':') {
                char port[8];
                size_t n = strcspn(after + 1, "?");

                if (n == 0 || n >= sizeof(port))
                        return -EINVAL;
                memcpy(port, after + 1, n);
                port[n] = '\0';
                if (parse_u64(port, &ret->port) < 0 || ret->port == 0 || ret->port > 65535)
                        return -EINVAL;
                after += 1 + n;
        }
        if (*after != '\0' && *after != '?')
                return -EINVAL;
        ret->query = after;
        return 0;
}

/* Whether the builder goes through a Host alias of the ssh configuration: a port other than
 * 22, which Nix before 2.31 cannot pass to ssh from the URI. */
static bool builder_needs_alias(const struct builder_address *a)
{
        return a->port != 0 && a->port != 22;
}

bool render_plan_has_ssh_aliases(const struct plan *plan)
{
        struct builder_address a;

        for (size_t i = 0; i < plan->n_builders; i++)
                if (builder_address_parse(&plan->builders[i], &a) >= 0 && builder_needs_alias(&a))
                        return true;
        return false;
}

/* The host part of the builder's URI as Nix is given it: the alias and the query for a builder
 * behind an alias, else plan_builder.host as it is. */
static int put_builder_host(struct buf *b, const struct plan_builder *m)
{
        struct builder_address a;
        int r = builder_address_parse(m, &a);

        if (r < 0)
                return r;
        if (!builder_needs_alias(&a))
                return buf_puts(b, m->host);
        return buf_printf(b, RENDER_SSH_ALIAS_FORMAT "%s", m->index, a.query);
}

/* The Host blocks of the ssh configuration, one line each, for the builders behind aliases. */
static int put_ssh_host_blocks(struct buf *b, const struct plan *plan)
{
        int r = 0;

        for (size_t i = 0; r >= 0 && i < plan->n_builders; i++) {
                const struct plan_builder *m = &plan->builders[i];
                struct builder_address a;

                r = builder_address_parse(m, &a);
                if (r < 0 || !builder_needs_alias(&a))
                        continue;
                if (!machines_word_is_valid(a.host) ||
                    (m->identity_path && !machines_word_is_valid(m->identity_path)))
                        return -EINVAL;
                r = buf_printf(b,
                               "Host " RENDER_SSH_ALIAS_FORMAT "\n  HostName %s\n  Port %" PRIu64
                               "\n  HostKeyAlias " RENDER_SSH_ALIAS_FORMAT "\n",
                               m->index, a.host, a.port, m->index);
                if (r >= 0 && m->identity_path)
                        r = buf_printf(b, "  IdentityFile %s\n", m->identity_path);
        }
        return r;
}

int render_ssh_config(const struct plan *plan, uint64_t serial, char **ret_text)
{
        _cleanup_(buf_free) struct buf b = BUF_INIT(RENDER_MAX_BYTES);
        int r;

        r = buf_printf(&b, HEADER_FORMAT, serial);
        if (r >= 0)
                r = put_ssh_host_blocks(&b, plan);
        return finish(&b, r, ret_text);
}

int render_machines(const struct plan *plan, char **ret_text)
{
        _cleanup_(buf_free) struct buf b = BUF_INIT(RENDER_MAX_BYTES);
        int r = 0;

        for (size_t i = 0; r >= 0 && i < plan->n_builders; i++) {
                const struct plan_builder *m = &plan->builders[i];

                if (!machines_word_is_valid(m->uri) || !machines_word_is_valid(m->host) ||
                    m->n_systems == 0 ||
                    (m->identity_path && !machines_word_is_valid(m->identity_path)) ||
                    !m->host_key || !*m->host_key || has_control(m->host_key))
                        return -EINVAL;
                r = buf_printf(&b, "%s://%s%s",
                               m->protocol == PLAN_BUILDER_SSH_NG ? "ssh-ng" : "ssh", m->user ?: "",
                               m->user ? "@" : "");
                if (r >= 0)
                        r = put_builder_host(&b, m);
                if (r >= 0)
                        r = buf_puts(&b, " ");
                if (r >= 0)
                        r = put_machines_list(&b, m->systems, m->n_systems);
                if (r >= 0)
                        r = buf_printf(&b, " %s %" PRIu64 " %" PRIu64 " ",
                                       m->identity_path ? m->identity_path : "-", m->max_jobs,
                                       m->speed_factor);
                if (r >= 0)
                        r = put_machines_list(&b, m->supported_features, m->n_supported_features);
                if (r >= 0)
                        r = buf_puts(&b, " ");
                if (r >= 0)
                        r = put_machines_list(&b, m->mandatory_features, m->n_mandatory_features);
                if (r >= 0)
                        r = buf_puts(&b, " ");
                if (r >= 0)
                        r = put_base64(&b, m->host_key);
                if (r >= 0)
                        r = buf_puts(&b, "\n");
        }
        return finish(&b, r, ret_text);
}

/* A Nix string literal: '"' and '\' escaped, and "${" escaped so nothing is interpolated.
 * Control characters cannot be written (the plan refuses them already). */
static int put_nix_string(struct buf *b, const char *s)
{
        int r;

        if (has_control(s))
                return -EINVAL;
        r = buf_puts(b, "\"");
        for (const char *c = s; r >= 0 && *c; c++) {
                if (*c == '"' || *c == '\\' || (c[0] == '$' && c[1] == '{'))
                        r = buf_puts(b, "\\");
                if (r >= 0)
                        r = buf_append(b, c, 1);
        }
        if (r >= 0)
                r = buf_puts(b, "\"");
        return r;
}

static bool is_nix_identifier(const char *s)
{
        static const char *const keywords[] = {
            "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
        };

        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '_' || *c == '\'' || *c == '-'))
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                if (streq(s, keywords[i]))
                        return false;
        return true;
}

static int put_nix_attribute_name(struct buf *b, const char *name)
{
        if (is_nix_identifier(name))
                return buf_puts(b, name);
        return put_nix_string(b, name);
}

/* Settings whose nix.conf value is a white-space separated list (Nix's Strings, StringSet and
 * Paths settings). Every "extra-NAME" is a list too: only list settings take the prefix. */
static const char *const list_settings[] = {
    "access-tokens",
    "allowed-impure-host-deps",
    "allowed-uris",
    "allowed-users",
    "experimental-features",
    "hashed-mirrors",
    "nix-path",
    "plugin-files",
    "sandbox-paths",
    "secret-key-files",
    "substituters",
    "system-features",
    "trusted-public-keys",
    "trusted-substituters",
    "trusted-users",
    "extra-platforms", /* a setting of its own, not "platforms" with the prefix */
};

static bool is_list_setting(const char *name)
{
        if (strncmp(name, "extra-", 6) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(list_settings); i++)
                if (streq(name, list_settings[i]))
                        return true;
        return false;
}

static int put_nix_list(struct buf *b, const char *value)
{
        int r = buf_puts(b, "[");

        for (const char *p = value; r >= 0 && *p;) {
                _cleanup_free_ char *word = NULL;
                size_t len;

                p += strspn(p, " \t");
                len = strcspn(p, " \t");
                if (len == 0)
                        break;
                word = strndup(p, len);
                if (!word)
                        return -ENOMEM;
                r = buf_puts(b, " ");
                if (r >= 0)
                        r = put_nix_string(b, word);
                p += len;
        }
        if (r >= 0)
                r = buf_puts(b, " ]");
        return r;
}

/* An integer Nix can read: decimal, no sign, no leading zero, at most INT64_MAX. */
static bool is_nix_integer(const char *s, uint64_t *ret)
{
        return parse_u64(s, ret) >= 0 && *ret <= INT64_MAX;
}

static int put_nix_setting_value(struct buf *b, const char *name, const char *value)
{
        uint64_t number;
        int r;

        if (is_list_setting(name))
                return put_nix_list(b, value);
        r = buf_puts(b, "lib.mkDefault ");
        if (r < 0)
                return r;
        if (streq(value, "true") || streq(value, "false"))
                return buf_puts(b, value);
        if (is_nix_integer(value, &number))
                return buf_printf(b, "%" PRIu64, number);
        return put_nix_string(b, value);
}

static int put_nix_string_list(struct buf *b, char *const *items, size_t n)
{
        int r = buf_puts(b, "[");

        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = buf_puts(b, " ");
                if (r >= 0)
                        r = put_nix_string(b, items[i]);
        }
        if (r >= 0)
                r = buf_puts(b, " ]");
        return r;
}

static const char *const builder_protocols[] = {
    [PLAN_BUILDER_SSH] = "ssh",
    [PLAN_BUILDER_SSH_NG] = "ssh-ng",
};

static int put_build_machine(struct buf *b, const struct plan_builder *m)
{
        _cleanup_(buf_free) struct buf key = BUF_INIT(RENDER_MAX_BYTES);
        _cleanup_(buf_free) struct buf host = BUF_INIT(RENDER_MAX_BYTES);
        int r;

        if ((unsigned)m->protocol >= ELEMENTSOF(builder_protocols) || !m->host ||
            m->max_jobs > INT64_MAX || m->speed_factor > INT64_MAX || m->n_systems == 0 ||
            !m->host_key || !*m->host_key)
                return -EINVAL;
        r = put_base64(&key, m->host_key);
        if (r < 0)
                return r;

        r = put_builder_host(&host, m);
        if (r < 0)
                return r;
        r = buf_puts(b, "    {\n      hostName = ");
        if (r >= 0)
                r = put_nix_string(b, host.data);
        if (r >= 0 && m->user) {
                r = buf_puts(b, ";\n      sshUser = ");
                if (r >= 0)
                        r = put_nix_string(b, m->user);
        }
        if (r >= 0)
                r = buf_printf(b, ";\n      protocol = \"%s\";\n      systems = ",
                               builder_protocols[m->protocol]);
        if (r >= 0)
                r = put_nix_string_list(b, m->systems, m->n_systems);
        if (r >= 0)
                r = buf_printf(b,
                               ";\n      maxJobs = %" PRIu64 ";\n      speedFactor = %" PRIu64
                               ";\n      supportedFeatures = ",
                               m->max_jobs, m->speed_factor);
        if (r >= 0)
                r = put_nix_string_list(b, m->supported_features, m->n_supported_features);
        if (r >= 0)
                r = buf_puts(b, ";\n      mandatoryFeatures = ");
        if (r >= 0)
                r = put_nix_string_list(b, m->mandatory_features, m->n_mandatory_features);
        if (r >= 0 && m->identity_path) {
                r = buf_puts(b, ";\n      sshKey = ");
                if (r >= 0)
                        r = put_nix_string(b, m->identity_path);
        }
        if (r >= 0)
                r = buf_puts(b, ";\n      publicHostKey = ");
        if (r >= 0)
                r = put_nix_string(b, key.data);
        if (r >= 0)
                r = buf_puts(b, ";\n    }\n");
        return r;
}

/* programs.ssh.extraConfig: the Host blocks of the ssh configuration, one Nix string a line. */
static int put_nixos_ssh_config(struct buf *b, const struct plan *plan)
{
        _cleanup_(buf_free) struct buf blocks = BUF_INIT(RENDER_MAX_BYTES);
        _cleanup_free_ char *text = NULL;
        char *line, *save = NULL;
        int r;

        r = put_ssh_host_blocks(&blocks, plan);
        if (r >= 0)
                r = buf_puts(&blocks, "");
        if (r < 0)
                return r;
        text = buf_steal(&blocks, NULL);
        if (!text)
                return -ENOMEM;
        r = buf_puts(
            b, "  programs.ssh.extraConfig = lib.concatMapStrings (line: line + \"\\n\") [\n");
        for (line = strtok_r(text, "\n", &save); r >= 0 && line;
             line = strtok_r(NULL, "\n", &save)) {
                r = buf_puts(b, "    ");
                if (r >= 0)
                        r = put_nix_string(b, line);
                if (r >= 0)
                        r = buf_puts(b, "\n");
        }
        if (r >= 0)
                r = buf_puts(b, "  ];\n");
        return r;
}

int render_nixos_module(const struct plan *plan, uint64_t serial, char **ret_text)
{
        _cleanup_(buf_free) struct buf b = BUF_INIT(RENDER_MAX_BYTES);
        int r;

        r = buf_printf(&b, HEADER_FORMAT, serial);
        if (r >= 0)
                r = buf_puts(&b, "{ lib, ... }:\n{\n  nix.settings = {\n");
        for (size_t i = 0; r >= 0 && i < plan->n_settings; i++) {
                const struct plan_setting *s = &plan->settings[i];

                /* nix.buildMachines below is the NixOS way, read from /etc/nix/machines. */
                if (plan->n_builders > 0 && streq(s->name, "builders"))
                        continue;
                if (has_control(s->name) || has_control(s->value))
                        return -EINVAL;
                r = buf_puts(&b, "    ");
                if (r >= 0)
                        r = put_nix_attribute_name(&b, s->name);
                if (r >= 0)
                        r = buf_puts(&b, " = ");
                if (r >= 0)
                        r = put_nix_setting_value(&b, s->name, s->value);
                if (r >= 0)
                        r = buf_puts(&b, ";\n");
        }
        if (r >= 0)
                r = buf_puts(&b, "  };\n");

        if (r >= 0 && plan->n_builders > 0) {
                r = buf_puts(&b, "  nix.distributedBuilds = true;\n  nix.buildMachines = [\n");
                for (size_t i = 0; r >= 0 && i < plan->n_builders; i++)
                        r = put_build_machine(&b, &plan->builders[i]);
                if (r >= 0)
                        r = buf_puts(&b, "  ];\n");
        }
        if (r >= 0 && render_plan_has_ssh_aliases(plan))
                r = put_nixos_ssh_config(&b, plan);
        if (r >= 0 && plan_needs_secrets(plan))
                r = buf_puts(&b, "  nix.extraOptions = \"!include " RENDER_SECRETS_FILE "\";\n");
        if (r >= 0)
                r = buf_puts(&b, "}\n");
        return finish(&b, r, ret_text);
}
