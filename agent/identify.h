/* SPDX-License-Identifier: MIT */
#pragma once

/* The identify phase: who and what this device is. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine_id.h"

#define IDENTITY_HOSTNAME_MAX 65
#define IDENTITY_SYSTEM_MAX 32
#define IDENTITY_MACS_MAX 16 /* network interfaces whose MAC address is reported */
#define IDENTITY_MAC_SIZE 18 /* "aa:bb:cc:dd:ee:ff" and its NUL */

struct identity {
        char machine_id[MACHINE_ID_STRING_MAX];
        char hostname[IDENTITY_HOSTNAME_MAX];
        char system[IDENTITY_SYSTEM_MAX]; /* Nix's name: x86_64-linux, aarch64-linux ... */
        unsigned cpus;                    /* online CPUs */
        uint64_t memory_bytes;            /* physical memory */
        /* The MAC addresses of the network interfaces (ROOT/sys/class/net/NAME/address; not
         * lo, not all zero), lowercase, sorted, at most IDENTITY_MACS_MAX: the enrollment
         * policy can approve a device by one of them. */
        char macs[IDENTITY_MACS_MAX][IDENTITY_MAC_SIZE];
        size_t n_macs;
};

/* Fills *ret for the device under root. machine_id_override (NULL: read ROOT/etc/machine-id,
 * else DMI's product UUID) is normalized like any machine id. Returns 0, or the negative errno of
 * machine_id_read()/machine_id_normalize() (-ENOENT: no machine id anywhere, -EINVAL: malformed).
 */
int identify(const char *root, const char *machine_id_override, struct identity *ret);
