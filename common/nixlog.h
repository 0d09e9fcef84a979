/* SPDX-License-Identifier: MIT */
#pragma once

/* An incremental parser of the stream Nix writes with --log-format internal-json (mixed, as
 * nixos-rebuild produces it, with plain lines of its own). It counts what was substituted,
 * copied and built (locally or on a remote builder) and how many bytes were transferred, keeps
 * the last error message, and keeps a readable tail of the log for a failure report.
 *
 * The stream is treated as untrusted: malformed, truncated, hostile or overlong lines are
 * counted and skipped, never fatal; all memory is bounded by the limits below.
 *
 * Record shapes (Nix's src/libutil/logging.hh and JSONLogger, checked against Nix 2.8):
 *   @nix {"action":"start","id":N,"type":T,"fields":[...],"level":L,"text":"..."}
 *   @nix {"action":"stop","id":N}
 *   @nix {"action":"result","id":N,"type":R,"fields":[...]}
 *   @nix {"action":"msg","level":L,"msg":"..."}
 * Activity types (start records) and result types (result records) reuse the same numbers
 * with different meanings: start type 105 is a Build, result type 105 is Progress. */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A line longer than this (without its newline) is skipped and counted in overlong_lines. */
#define NIXLOG_LINE_MAX (64 * 1024)
/* Transfers (CopyPath and FileTransfer activities) tracked at once for their byte counts. A
 * transfer is forgotten at its "stop" record, so this bounds concurrent transfers only; one
 * started past the limit is counted in untracked_transfers and its bytes are not counted (the
 * byte counts are then lower bounds). */
#define NIXLOG_TRANSFERS_MAX 4096
/* Distinct remote build machine names remembered (more are counted, not named). */
#define NIXLOG_MACHINES_MAX 16
#define NIXLOG_MACHINE_NAME_MAX 256
/* The last error message is cut to this many bytes. */
#define NIXLOG_ERROR_MAX 2048
/* The readable tail holds at most this many bytes of the latest log text. */
#define NIXLOG_TAIL_MAX 4096

/* Activity types of "start" records. */
enum {
        NIXLOG_ACT_COPY_PATH = 100,
        NIXLOG_ACT_FILE_TRANSFER = 101,
        NIXLOG_ACT_BUILD = 105,
        NIXLOG_ACT_SUBSTITUTE = 108,
};

/* Result types of "result" records. */
enum {
        NIXLOG_RES_BUILD_LOG_LINE = 101,
        NIXLOG_RES_PROGRESS = 105,
};

struct nixlog_counts {
        uint64_t substituted;         /* Substitute activities started: paths taken from a cache */
        uint64_t copied;              /* CopyPath activities started */
        uint64_t built_local;         /* Build activities with an empty machine name */
        uint64_t built_remote;        /* Build activities on a named remote machine */
        uint64_t downloaded_bytes;    /* FileTransfer activities: sum of each one's last "done" */
        uint64_t copied_bytes;        /* CopyPath activities: sum of each one's last "done" */
        uint64_t lines;               /* complete lines seen, of any kind */
        uint64_t json_lines;          /* "@nix " lines understood */
        uint64_t bad_lines;           /* "@nix " lines that are not JSON or not of a known shape */
        uint64_t overlong_lines;      /* lines longer than NIXLOG_LINE_MAX, skipped */
        uint64_t untracked_transfers; /* transfers past NIXLOG_TRANSFERS_MAX */
        uint64_t machines_unnamed;    /* remote machines past NIXLOG_MACHINES_MAX */
};

struct nixlog;

/* Returns a new parser, or NULL when out of memory. */
struct nixlog *nixlog_new(void);
/* Frees the parser; accepts NULL; returns NULL. */
struct nixlog *nixlog_free(struct nixlog *nl);
DEFINE_POINTER_CLEANUP(nixlog, nixlog_free)

/* Feeds size bytes of the stream, in chunks of any size: a line may be split across calls.
 * Complete lines are processed at once; a partial one is kept until its newline (or
 * nixlog_finish()). Returns 0, or -ENOMEM (the parser stays usable; the chunk is lost). */
int nixlog_feed(struct nixlog *nl, const void *data, size_t size);

/* Processes a last line left without a newline at the end of the stream. Returns 0. */
int nixlog_finish(struct nixlog *nl);

/* The counts so far; owned by the parser, valid until the next feed or free. */
const struct nixlog_counts *nixlog_counts(const struct nixlog *nl);

/* The last error message (a "msg" record of level 0, or a plain line starting with "error:"),
 * without terminal escape sequences, at most NIXLOG_ERROR_MAX bytes; NULL when none. Owned by
 * the parser. */
const char *nixlog_last_error(const struct nixlog *nl);

/* The remote machine names builds ran on, in order of first appearance; *ret_n is set to how
 * many. Owned by the parser. */
const char *const *nixlog_machines(const struct nixlog *nl, size_t *ret_n);

/* A readable tail of the log: the last NIXLOG_TAIL_MAX bytes (starting at a line) of plain
 * lines, builder output and Nix's messages, without escape sequences; "" when none. Owned by the
 * parser. */
const char *nixlog_tail(const struct nixlog *nl);

/* Copies src[0..size) into dst (of dst_size bytes, NUL-terminated, cut if needed) without ANSI
 * escape sequences and other control characters (newlines and tabs are kept). Returns the
 * length written. */
size_t nixlog_strip_escapes(const char *src, size_t size, char *dst, size_t dst_size);
