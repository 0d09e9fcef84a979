/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Machine ids: 128 bits written as 32 lowercase hex digits, as in /etc/machine-id. */

#define MACHINE_ID_STRING_MAX 33

/* Whether s is a machine id as written everywhere after normalizing: exactly 32 lowercase hex
 * digits (what a device sends the server). */
bool machine_id_is_canonical(const char *s);

/* Normalizes s into ret: 32 hex digits in either case, or the dashed UUID form
 * (8-4-4-4-12, as DMI's product_uuid), optionally followed by one newline. Returns 0 or -EINVAL.
 * An all-zero id is refused (-EINVAL): it is what an unconfigured image carries. */
int machine_id_normalize(const char *s, char ret[static MACHINE_ID_STRING_MAX]);

/* Reads this machine's id under root ("/" or a test tree): ROOT/etc/machine-id, else
 * ROOT/sys/class/dmi/id/product_uuid (an empty or "uninitialized" machine-id, as
 * before systemd's first boot, falls through to DMI). Returns 0, -ENOENT when neither exists,
 * -EINVAL when the one found is malformed, or another negative errno. */
int machine_id_read(const char *root, char ret[static MACHINE_ID_STRING_MAX]);
