/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <sodium.h>

#include "log.h"
#include "service.h"
#include "signedjson.h"

int service_fail(char reason[static SERVICE_REASON_MAX], int r, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(reason, SERVICE_REASON_MAX, format, ap);
        va_end(ap);
        return r;
}

int service_store_errno(int r)
{
        return r == -EBUSY ? -EBUSY : -EIO;
}

int service_parse_signed(const char *body, size_t body_size, const char *what, json_t **ret_json,
                         char reason[static SERVICE_REASON_MAX])
{
        uint8_t signature[crypto_sign_BYTES];
        json_error_t error;
        json_t *json;
        size_t n;
        int r;

        r = signedjson_split(body, body_size, &n, signature);
        if (r == -ENOMSG)
                return service_fail(reason, -ENOMSG, "%s must be signed by the device key", what);
        if (r == -E2BIG)
                return service_fail(reason, -E2BIG, "signed body too large (at most %d bytes)",
                                    SIGNEDJSON_MAX);
        if (r < 0)
                return service_fail(reason, -EBADMSG,
                                    "malformed signature member: expected "
                                    "\"signature\":\"BASE64\" (64 bytes) as the last member");
        json = json_loadb(body, body_size, JSON_REJECT_DUPLICATES, &error);
        if (!json)
                return service_fail(reason, -EBADMSG, "malformed JSON at line %d, column %d: %s",
                                    error.line, error.column, error.text);
        *ret_json = json;
        return 0;
}

int service_list_machines(struct store *store, const struct store_page *page,
                          struct store_machine_list *ret_list,
                          char reason[static SERVICE_REASON_MAX])
{
        int r;

        r = store_list_machines(store, page, ret_list);
        if (r < 0) {
                log_error_errno(r, "Failed to list machines: %m");
                return service_fail(reason, service_store_errno(r), "failed to list machines");
        }
        return 0;
}

int service_get_machine(struct store *store, const char *machine_id, const struct store_page *page,
                        struct store_machine *ret_machine, struct store_history *ret_history,
                        char reason[static SERVICE_REASON_MAX])
{
        int r;

        r = store_get_machine(store, machine_id, page, ret_machine, ret_history);
        if (r == -ENOENT)
                return service_fail(reason, -ENOENT, "unknown machine %s", machine_id);
        if (r < 0) {
                log_error_errno(r, "Failed to read machine %s: %m", machine_id);
                return service_fail(reason, service_store_errno(r), "failed to read the machine");
        }
        return 0;
}
