/* SPDX-License-Identifier: MIT */
#pragma once

/* What a Nix dry run (nixos-rebuild dry-build, nix-build --dry-run) says a build will do, from
 * its plain-text output (untrusted: any bytes). The lines it recognises, as Nix 2.8 and current
 * Nix print them (printMissing()):
 *
 *   this derivation will be built:
 *   these N derivations will be built:
 *   this path will be fetched (X MiB download, Y MiB unpacked):
 *   these N paths will be fetched (X MiB download, Y MiB unpacked):
 *
 * Sizes are "1.23 MiB" (Nix 2.8: always MiB with two decimals) or any of B, KiB, MiB, GiB, TiB,
 * PiB, EiB with an optional fraction (current Nix). Other lines (the listed store paths, "don't
 * know how to build", warnings) are ignored; the same header twice adds up (saturating). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRYRUN_LINE_MAX 4096 /* longer lines are ignored */

struct dryrun_summary {
        uint64_t to_build;       /* derivations Nix will build (locally or on a builder) */
        uint64_t to_fetch;       /* store paths it will substitute */
        uint64_t download_bytes; /* of the fetched paths (compressed) */
        uint64_t unpacked_bytes;
        bool have_build; /* a "will be built" header was seen */
        bool have_fetch; /* a "will be fetched" header was seen */
};

/* Parses size bytes of text (NUL bytes included, as any other byte). Always fills *ret. Returns
 * 0, or -EBADMSG when a line that starts with "this " or "these " names "will be built:" or
 * "will be fetched (" but does not parse (a dry run whose
 * outcome cannot be told: refuse, do not guess 0). */
int dryrun_parse(const char *text, size_t size, struct dryrun_summary *ret);

/* Parses "12", "1.5" or "0.25" followed by a space and a unit (B, KiB ... EiB) into bytes
 * (rounded down, saturating at UINT64_MAX); *ret_end points after the unit. Returns 0 or
 * -EINVAL. */
int dryrun_parse_size(const char *s, uint64_t *ret_bytes, const char **ret_end);
