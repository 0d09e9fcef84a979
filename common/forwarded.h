/* SPDX-License-Identifier: MIT */
#pragma once

/* Client addresses behind proxies: a peer's address as text, and which address of an
 * X-Forwarded-For header (untrusted input: whatever the client and each proxy wrote) names the
 * client. Pure functions, no I/O. */

#include <stdbool.h>
#include <stddef.h>

#define FORWARDED_ADDRESS_MAX 46 /* INET6_ADDRSTRLEN: an address as text, with its NUL */

/* Parses a numeric IPv4 or IPv6 address and writes it in the one form addresses are compared
 * in: inet_ntop()'s, with an IPv4-mapped IPv6 address written as IPv4. Returns 0 or -EINVAL
 * (ret is then unspecified). */
int forwarded_address_normalize(const char *s, char ret[FORWARDED_ADDRESS_MAX]);

/* Whether address (normalized) is one of the n trusted ones (normalized). */
bool forwarded_is_trusted(const char (*trusted)[FORWARDED_ADDRESS_MAX], size_t n,
                          const char *address);

/* The client named by an X-Forwarded-For header that a trusted proxy passed on: the right-most
 * comma-separated item that is not a trusted proxy itself, normalized into ret. Returns 0, or
 * -ENOENT when every item is a trusted proxy, or -EINVAL when the item that would be the
 * client (or a trusted one's left neighbour) is not an address: the caller then falls back to
 * the peer's address. Spaces and tabs around items are ignored; nothing else is. */
int forwarded_client(const char *header, const char (*trusted)[FORWARDED_ADDRESS_MAX], size_t n,
                     char ret[FORWARDED_ADDRESS_MAX]);
