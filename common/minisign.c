/* SPDX-License-Identifier: MIT */
/* Placeholder: implemented on the minisign branch. */
#include "minisign.h"
