/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the agent's configuration: the same bytes as an agent.yaml and as a
 * kernel command line. Neither may crash, leak or hang; an error leaves a record that formats
 * and, for the command line, a configuration exactly as it was. Keys given as paths make the
 * parser read files: random paths fail, and only regular files are read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool url_ok(const char *url)
{
        return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0 ||
               strncmp(url, "file://", 7) == 0;
}

static void check_config(const struct agent_config *c)
{
        if (c->n_urls > AGENT_CONFIG_MAX_URLS || c->n_keys > AGENT_CONFIG_MAX_KEYS ||
            c->n_groups > AGENT_CONFIG_MAX_GROUPS || !c->state_dir || c->state_dir[0] != '/' ||
            !c->log_dir || c->log_dir[0] != '/' || !c->rebuild_command || c->connect_timeout < 1 ||
            c->connect_timeout > 600 || c->deadline < 1 || c->deadline > 86400)
                abort();
        for (size_t i = 0; i < c->n_urls; i++)
                if (!url_ok(c->urls[i]) || strpbrk(c->urls[i], " \t\r\n"))
                        abort();
        for (size_t i = 0; i < c->n_groups; i++)
                if (!profile_group_name_valid(c->groups[i]))
                        abort();
}

/* Applies text as a command line; on failure nothing of c may have changed. */
static void apply_cmdline(struct agent_config *c, const char *text)
{
        char **urls = c->urls, **groups = c->groups;
        struct minisign_public_key *keys = c->keys;
        size_t n_urls = c->n_urls, n_keys = c->n_keys, n_groups = c->n_groups;
        char *bad = NULL;
        int r;

        r = agent_config_apply_cmdline(c, text, &bad);
        if (r < 0) {
                if (!bad || !strstr(text, bad) || c->urls != urls || c->n_urls != n_urls ||
                    c->keys != keys || c->n_keys != n_keys || c->groups != groups ||
                    c->n_groups != n_groups)
                        abort();
                free(bad);
                return;
        }
        if (bad)
                abort();
        check_config(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct agent_config *c = NULL;
        struct profile_error error;
        char line[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX + PROFILE_ERROR_MESSAGE_MAX + 32];
        char *text;
        int r;

        /* Poison the record: the parser must fill every part it reports on. */
        memset(&error, 'X', sizeof(error));
        r = agent_config_parse((const char *)data, size, "fuzz.yaml", &c, &error);
        if (r < 0) {
                if (c)
                        abort();
                if (memchr(error.file, 0, sizeof(error.file)) == NULL ||
                    memchr(error.key, 0, sizeof(error.key)) == NULL ||
                    memchr(error.message, 0, sizeof(error.message)) == NULL)
                        abort();
                if (strlen(profile_error_format(&error, line, sizeof(line))) >= sizeof(line))
                        abort();
                if (agent_config_new_default(&c) < 0)
                        abort();
        }
        check_config(c);

        /* The command line is a string: up to the first NUL. */
        text = strndup((const char *)data, size);
        if (!text)
                abort();
        apply_cmdline(c, text);
        free(text);
        c = agent_config_free(c);
        return 0;
}
