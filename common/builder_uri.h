/* SPDX-License-Identifier: MIT */
#pragma once

/* A remote builder's URI, as the builders phase needs it: a pure parser (no network, no
 * printing), reachable by a fuzzer (fuzz-builder-uri). The profile's builders[].uri is
 * untrusted until the profile is verified, and the parsed parts go to libssh and into the
 * command run on the builder: each part is bounded and remote-program is a plain name. */

#include <stdbool.h>
#include <stddef.h>

#define BUILDERS_DEFAULT_USER "root"
#define BUILDERS_DEFAULT_PORT 22
#define BUILDERS_DEFAULT_PROGRAM "nix-store"
#define BUILDERS_USER_MAX 64
#define BUILDERS_HOST_MAX 256
#define BUILDERS_PROGRAM_MAX 256

/* What the probe takes from a builder URI: ssh://[user@]host[:port][?query] or ssh-ng://...
 * A host may be an IPv6 address in brackets ("[::1]:2222"). Of the query only remote-program
 * matters here (percent-decoded; it must be a plain command name or path). */
struct builder_uri {
        char user[BUILDERS_USER_MAX];       /* BUILDERS_DEFAULT_USER when the URI names none */
        char host[BUILDERS_HOST_MAX];       /* without brackets */
        unsigned port;                      /* BUILDERS_DEFAULT_PORT when the URI names none */
        char program[BUILDERS_PROGRAM_MAX]; /* BUILDERS_DEFAULT_PROGRAM unless remote-program= */
};

/* Parses uri into *ret. Returns 0, or -EINVAL (another scheme, an empty host or user, a port
 * outside 1..65535, a remote-program that is not [A-Za-z0-9._/+-]+) or -E2BIG (a part longer
 * than its field). ret is set only on success. */
int builders_parse_uri(const char *uri, struct builder_uri *ret);
