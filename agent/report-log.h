/* SPDX-License-Identifier: MIT */
#pragma once

/* The program layer's messages about the report spool: the spool and delivery modules record
 * what happened (spool.h, struct report_outcome) and never log; run and the report commands
 * call this once after each emit or flush. */

#include "delivery.h"

/* Logs every event s recorded since the last call (a file moved to bad/, a report the server
 * refused for good, one dropped because the spool was full ...), then forgets them. */
void report_log_events(struct report_spool *s);
