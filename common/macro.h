/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers used everywhere: cleanup attributes, ownership transfer, array sizes. */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _nonnull_(...) __attribute__((nonnull(__VA_ARGS__)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

/* Hand ownership of *p out of a cleanup scope: returns the pointer and leaves NULL behind. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                typeof(p) _take_tmp = (p);                                                         \
                (p) = NULL;                                                                        \
                _take_tmp;                                                                         \
        })

#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _take_fd = (fd);                                                               \
                (fd) = -EBADF;                                                                     \
                _take_fd;                                                                          \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* For a type whose destructor returns NULL: DEFINE_POINTER_CLEANUP(profile, profile_free)
 * defines profile_freep() for use as _cleanup_(profile_freep). */
#define DEFINE_POINTER_CLEANUP(name, destructor)                                                   \
        static inline void name##_freep(struct name **p)                                           \
        {                                                                                          \
                if (*p)                                                                            \
                        *p = destructor(*p);                                                       \
        }

static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
