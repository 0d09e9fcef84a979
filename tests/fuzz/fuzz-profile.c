/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the profile parser: any bytes, from any signer's key, must give a
 * profile or an error record, never a crash, a leak or a hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct profile *p = NULL;
        struct profile_error error;
        char line[PROFILE_ERROR_FILE_MAX + PROFILE_ERROR_KEY_MAX + PROFILE_ERROR_MESSAGE_MAX + 32];
        int r;

        /* Poison the record: the parser must fill every part it reports on. */
        memset(&error, 'X', sizeof(error));
        r = profile_parse((const char *)data, size, "fuzz.yaml", &p, &error);
        if (r < 0) {
                if (p)
                        abort();
                if (memchr(error.file, 0, sizeof(error.file)) == NULL ||
                    memchr(error.key, 0, sizeof(error.key)) == NULL ||
                    memchr(error.message, 0, sizeof(error.message)) == NULL)
                        abort();
                if (strlen(profile_error_format(&error, line, sizeof(line))) >= sizeof(line))
                        abort();
                return 0;
        }
        if (!p || p->schema != PROFILE_SCHEMA || (!p->n_machines && !p->n_groups) ||
            !profile_strategy_to_string(p->strategy) ||
            !profile_rebuild_action_to_string(p->rebuild.action))
                abort();
        for (size_t i = 0; i < p->n_settings; i++)
                if (profile_find_setting(p, p->settings[i].name) != &p->settings[i])
                        abort();
        p = profile_free(p);
        return 0;
}
