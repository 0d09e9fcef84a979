/* SPDX-License-Identifier: MIT */
#pragma once

/* The identify phase: who and what this device is. */

#include <stdint.h>

#include "machine_id.h"

#define IDENTITY_HOSTNAME_MAX 65
#define IDENTITY_SYSTEM_MAX 32

struct identity {
        char machine_id[MACHINE_ID_STRING_MAX];
        char hostname[IDENTITY_HOSTNAME_MAX];
        char system[IDENTITY_SYSTEM_MAX]; /* Nix's name: x86_64-linux, aarch64-linux ... */
        unsigned cpus;                    /* online CPUs */
        uint64_t memory_bytes;            /* physical memory */
};

/* Fills *ret for the device under root. machine_id_override (NULL: read ROOT/etc/machine-id,
 * else DMI's product UUID) is normalized like any machine id. Returns 0, or the negative errno of
 * machine_id_read()/machine_id_normalize() (-ENOENT: no machine id anywhere, -EINVAL: malformed). */
int identify(const char *root, const char *machine_id_override, struct identity *ret);
