/* SPDX-License-Identifier: MIT */
/* Placeholder: implemented on the profile branch. */
#include "profile.h"
