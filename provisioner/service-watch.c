/* SPDX-License-Identifier: MIT */
/* Noticing a newly published profile: inotify on the data directory and its machines/ and
 * groups/, one thread, the callback once the files have settled. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/param.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "util.h"

/* A file that is written and closed, moved in or out, or removed. Not IN_CREATE or IN_MODIFY:
 * its content is not all there yet (IN_CREATE is watched on DATA only, for machines/ and
 * groups/ appearing). */
#define SERVICE_WATCH_FILE_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)

struct service_watch {
        char *data_dir;
        void (*changed)(void *userdata);
        void *userdata;
        int inotify_fd;
        int stop_fd; /* an eventfd */
        pthread_t thread;
        bool thread_started;
};

/* (Again) watches DATA/machines and DATA/groups, which may appear after the start. */
static void service_watch_add_dirs(struct service_watch *w)
{
        static const char *const subdirs[] = {"machines", "groups"};

        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", w->data_dir, subdirs[i]) < 0) {
                        path = NULL;
                        continue;
                }
                /* A missing one is not an error: it is watched once it is made. */
                (void)inotify_add_watch(w->inotify_fd, path, SERVICE_WATCH_FILE_MASK);
        }
}

/* Reads every queued event; returns whether one of them is a change. */
static bool service_watch_drain(struct service_watch *w)
{
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool changed = false;

        for (;;) {
                ssize_t n = read(w->inotify_fd, buf, sizeof(buf));

                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        if (ev->mask & (SERVICE_WATCH_FILE_MASK | IN_Q_OVERFLOW))
                                changed = true;
                        if (ev->mask & IN_CREATE)
                                service_watch_add_dirs(w);
                        p += sizeof(*ev) + ev->len;
                }
        }
        return changed;
}

static void *service_watch_thread(void *userdata)
{
        struct service_watch *w = userdata;
        uint64_t first = 0, last = 0;

        for (;;) {
                struct pollfd fds[2] = {{.fd = w->inotify_fd, .events = POLLIN},
                                        {.fd = w->stop_fd, .events = POLLIN}};
                uint64_t now = monotonic_ms();
                int timeout = -1;

                if (first) {
                        /* Quiet for SETTLE ms (a profile and then its signature), or at most
                         * SETTLE_MAX ms after the first change. */
                        uint64_t due = MIN(last + SERVICE_WATCH_SETTLE_MS,
                                           first + SERVICE_WATCH_SETTLE_MAX_MS);

                        if (now >= due) {
                                first = last = 0;
                                w->changed(w->userdata);
                                continue;
                        }
                        timeout = (int)(due - now);
                }
                if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
                        log_error_errno(-errno, "Failed to wait for changes in %s: %m",
                                        w->data_dir);
                        return NULL;
                }
                if (fds[1].revents)
                        return NULL;
                if ((fds[0].revents & POLLIN) && service_watch_drain(w)) {
                        last = monotonic_ms();
                        if (!first)
                                first = last;
                }
        }
}

int service_watch_start(const char *data_dir, void (*changed)(void *userdata), void *userdata,
                        struct service_watch **ret)
{
        struct service_watch *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct service_watch){
            .changed = changed, .userdata = userdata, .inotify_fd = -1, .stop_fd = -1};
        w->data_dir = strdup(data_dir);
        w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!w->data_dir || w->inotify_fd < 0 || w->stop_fd < 0) {
                r = w->data_dir ? -errno : -ENOMEM;
                goto fail;
        }
        if (inotify_add_watch(w->inotify_fd, data_dir, SERVICE_WATCH_FILE_MASK | IN_CREATE) < 0) {
                r = -errno;
                goto fail;
        }
        service_watch_add_dirs(w);
        r = pthread_create(&w->thread, NULL, service_watch_thread, w);
        if (r != 0) {
                r = -r;
                goto fail;
        }
        w->thread_started = true;
        *ret = w;
        return 0;
fail:
        service_watch_stop(w);
        return r;
}

struct service_watch *service_watch_stop(struct service_watch *w)
{
        uint64_t one = 1;

        if (!w)
                return NULL;
        if (w->thread_started) {
                if (write(w->stop_fd, &one, sizeof(one)) < 0)
                        log_warning("Failed to stop the watch of %s: %m", w->data_dir);
                (void)pthread_join(w->thread, NULL);
        }
        if (w->inotify_fd >= 0)
                close(w->inotify_fd);
        if (w->stop_fd >= 0)
                close(w->stop_fd);
        free(w->data_dir);
        free(w);
        return NULL;
}
