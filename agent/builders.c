/* SPDX-License-Identifier: MIT */
/* The builders phase: each remote builder probed over SSH with libssh, in parallel. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "builder_uri.h"
#include "builders.h"
#include "fileio.h"
#include "util.h"

#define BUILDERS_OUTPUT_MAX 4096

/* The keys ssh tries for root when Nix's machines file names none ("-"), in ssh's order. */
static const char *const default_identities[] = {
    "/root/.ssh/id_ed25519",
    "/root/.ssh/id_ecdsa",
    "/root/.ssh/id_rsa",
}; /* what the version exec may print before we stop reading */

static const char *const builder_state_names[_BUILDER_STATE_MAX] = {
    [BUILDER_STATE_OK] = "ok",
    [BUILDER_STATE_UNREACHABLE] = "unreachable",
    [BUILDER_STATE_HOST_KEY_MISMATCH] = "host-key-mismatch",
    [BUILDER_STATE_AUTH_FAILED] = "auth-failed",
    [BUILDER_STATE_NIX_MISSING] = "nix-missing",
    [BUILDER_STATE_TIMEOUT] = "timeout",
};

const char *builder_state_to_string(enum builder_state state)
{
        if ((unsigned)state >= _BUILDER_STATE_MAX)
                return NULL;
        return builder_state_names[state];
}

/* ---- one probe ---- */

struct probe_job {
        const struct plan_builder *builder;
        const char *root;
        const char *identity_text; /* the opened sealed key, or NULL */
        uint64_t deadline;         /* CLOCK_MONOTONIC milliseconds */
        struct builder_probe *result;
};

static void set_result(struct builder_probe *result, enum builder_state state, const char *format,
                       ...) _printf_(3, 4);

static void set_result(struct builder_probe *result, enum builder_state state, const char *format,
                       ...)
{
        va_list ap;

        result->state = state;
        result->nix_version[0] = '\0';
        va_start(ap, format);
        vsnprintf(result->error, sizeof(result->error), format, ap);
        va_end(ap);
        /* What a remote host sent must not reach a terminal or a report as control bytes. */
        for (char *c = result->error; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
}

/* Sets libssh's timeout for its next blocking call to what is left of the deadline; false when
 * nothing is left. */
static bool set_remaining(ssh_session session, uint64_t deadline)
{
        uint64_t now = monotonic_ms();
        long sec, usec;

        if (now >= deadline)
                return false;
        sec = (long)((deadline - now) / 1000);
        usec = (long)((deadline - now) % 1000) * 1000;
        if (sec == 0 && usec == 0)
                usec = 1000;
        return ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &sec) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_TIMEOUT_USEC, &usec) == SSH_OK;
}

static int remaining_ms(uint64_t deadline)
{
        uint64_t now = monotonic_ms();

        if (now >= deadline)
                return 0;
        return deadline - now > 600000 ? 600000 : (int)(deadline - now);
}

/* The host key algorithms to ask the server for, so that it shows the key of the pinned type. */
static const char *hostkey_algorithms(const char *pinned_type)
{
        if (streq(pinned_type, "ssh-rsa"))
                return "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
        return pinned_type;
}

/* libssh counts a channel with unread stderr as not at its end: read it (the first bytes are
 * kept in err for the error message, the rest dropped). */
static void drain_stderr(ssh_channel channel, char *err, size_t *n_err)
{
        for (;;) {
                char discard[1024];
                size_t room = BUILDERS_OUTPUT_MAX - *n_err;
                int k;

                k = ssh_channel_read_nonblocking(channel, room ? err + *n_err : discard,
                                                 room ? (uint32_t)room : sizeof(discard), 1);
                if (k <= 0)
                        break;
                if (room)
                        *n_err += (size_t)k;
        }
}

/* Reads the command's first line into out (and the start of its stderr into err), both
 * terminated at their first line's end. Returns 0, or -1 with result set. */
static int read_version(ssh_session session, ssh_channel channel, const struct builder_uri *uri,
                        uint64_t deadline, char out[static BUILDERS_OUTPUT_MAX + 1],
                        char err[static BUILDERS_OUTPUT_MAX + 1], struct builder_probe *result)
{
        size_t n = 0, n_err = 0;
        int k;

        for (;;) {
                int ms = remaining_ms(deadline);

                if (ms == 0) {
                        set_result(result, BUILDER_STATE_TIMEOUT,
                                   "%s --version did not finish in time", uri->program);
                        return -1;
                }
                k = ssh_channel_read_timeout(channel, out + n, (uint32_t)(BUILDERS_OUTPUT_MAX - n),
                                             0, ms);
                if (k == SSH_ERROR) {
                        set_result(result, BUILDER_STATE_UNREACHABLE, "reading from %s: %s",
                                   uri->program, ssh_get_error(session));
                        return -1;
                }
                if (k > 0) {
                        n += (size_t)k;
                        if (n == BUILDERS_OUTPUT_MAX || memchr(out, '\n', n))
                                break;
                        continue;
                }
                drain_stderr(channel, err, &n_err);
                if (ssh_channel_is_eof(channel))
                        break;
        }
        err[n_err] = '\0';
        err[strcspn(err, "\r\n")] = '\0';
        out[n] = '\0';
        out[strcspn(out, "\r\n")] = '\0';
        return 0;
}

/* The verdict on the version line out, the stderr line err and the exit status. */
static void judge_version(const struct builder_uri *uri, char *out, const char *err, int status,
                          struct builder_probe *result)
{
        /* A version line and a zero (or, past the deadline, unknown) exit status: Nix answers. */
        if (out[0] == '\0' || status > 0) {
                if (status < 0)
                        set_result(result, BUILDER_STATE_NIX_MISSING,
                                   "%s --version printed nothing%s%.120s", uri->program,
                                   err[0] ? ": " : "", err);
                else
                        set_result(result, BUILDER_STATE_NIX_MISSING,
                                   "%s --version exited with status %d%s%s%.120s", uri->program,
                                   status, status == 127 ? " (command not found)" : "",
                                   err[0] ? ": " : "", err);
                return;
        }
        result->state = BUILDER_STATE_OK;
        result->error[0] = '\0';
        out[sizeof(result->nix_version) - 1] = '\0';
        memcpy(result->nix_version, out, strlen(out) + 1);
        for (char *c = result->nix_version; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
}

static void probe_exec(ssh_session session, const struct builder_uri *uri, uint64_t deadline,
                       struct builder_probe *result)
{
        char command[BUILDERS_PROGRAM_MAX + 16], out[BUILDERS_OUTPUT_MAX + 1];
        char err[BUILDERS_OUTPUT_MAX + 1];
        ssh_channel channel = NULL;
        uint64_t started;

        snprintf(command, sizeof(command), "%s --version", uri->program);
        if (!set_remaining(session, deadline)) {
                set_result(result, BUILDER_STATE_TIMEOUT, "timed out before running %s",
                           uri->program);
                return;
        }
        channel = ssh_channel_new(session);
        if (!channel || ssh_channel_open_session(channel) != SSH_OK) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT
                                                      : BUILDER_STATE_UNREACHABLE,
                           "cannot open a session: %s", ssh_get_error(session));
                goto out;
        }
        started = monotonic_ms();
        if (ssh_channel_request_exec(channel, command) != SSH_OK) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT
                                                      : BUILDER_STATE_NIX_MISSING,
                           "cannot run %s: %s", uri->program, ssh_get_error(session));
                goto out;
        }
        if (read_version(session, channel, uri, deadline, out, err, result) < 0)
                goto out;
        result->latency_ms = monotonic_ms() - started;

        (void)set_remaining(session, deadline);
        judge_version(uri, out, err, ssh_channel_get_exit_status(channel), result);
out:
        if (channel) {
                ssh_channel_close(channel);
                ssh_channel_free(channel);
        }
}

/* "TYPE BLOB" of a pinned host key: TYPE into pinned_type, *ret_blob pointing at BLOB in
 * host_key. Returns false when there is no usable key. */
static bool split_host_key(const char *host_key, char pinned_type[static 64], const char **ret_blob)
{
        const char *blob = host_key ? strchr(host_key, ' ') : NULL;

        if (!blob || (size_t)(blob - host_key) >= 64)
                return false;
        memcpy(pinned_type, host_key, (size_t)(blob - host_key));
        pinned_type[blob - host_key] = '\0';
        *ret_blob = blob + 1;
        return true;
}

/* No configuration file and no known_hosts: the pinned key of the profile decides alone. */
static bool configure_session(ssh_session session, const struct builder_uri *uri,
                              const char *pinned_type)
{
        int port = (int)uri->port, zero = 0;
        bool no = false;

        return ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_HOST, uri->host) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_PORT, &port) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_USER, uri->user) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_STRICTHOSTKEYCHECK, &zero) == SSH_OK &&
               ssh_options_set(session, SSH_OPTIONS_HOSTKEYS, hostkey_algorithms(pinned_type)) ==
                   SSH_OK;
}

/* The pinned key, exactly, before anything is offered to this server. Returns 0, or -1 with
 * result set. */
static int check_host_key(ssh_session session, const char *pinned_type, const char *pinned_blob,
                          struct builder_probe *result)
{
        ssh_key server_key = NULL;
        char *blob = NULL;
        const char *type;
        int r = 0;

        if (ssh_get_server_publickey(session, &server_key) != SSH_OK ||
            !(type = ssh_key_type_to_char(ssh_key_type(server_key))) ||
            ssh_pki_export_pubkey_base64(server_key, &blob) != SSH_OK) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH,
                           "host key mismatch: the server's key cannot be read");
                r = -1;
        } else if (!streq(type, pinned_type) || !streq(blob, pinned_blob)) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH,
                           "host key mismatch: possible man-in-the-middle (the server shows a "
                           "different %s key)",
                           type);
                r = -1;
        }
        ssh_string_free_char(blob);
        ssh_key_free(server_key);
        return r;
}

/* The key to log in with: the sealed one opened in the plan phase, the profile's file, or
 * root's first default key. *ret_name says which, for messages (it may point into
 * name_buf). Returns 0, or -1 with result set. */
static int load_identity(const struct plan_builder *b, const char *root, const char *identity_text,
                         char name_buf[static 64], const char **ret_name, ssh_key *ret_key,
                         struct builder_probe *result)
{
        _cleanup_free_ char *identity = NULL;
        const char *identity_name = b->identity_path;
        ssh_key private_key = NULL;

        if (b->identity_sealed && identity_text) {
                /* The key opened in the plan phase, from its locked memory: the file is written
                 * only after this phase. */
                snprintf(name_buf, 64, "builders[%zu].identity (sealed)", b->index);
                if (ssh_pki_import_privkey_base64(identity_text, NULL, NULL, NULL, &private_key) !=
                    SSH_OK) {
                        set_result(result, BUILDER_STATE_AUTH_FAILED,
                                   "the identity %s is not a private key libssh can read "
                                   "(OpenSSH or PEM, without a passphrase)",
                                   name_buf);
                        return -1;
                }
                *ret_name = name_buf;
                *ret_key = private_key;
                return 0;
        }
        if (!identity_name) {
                /* Nix leaves the key to ssh, run by root: root's first default key. */
                for (size_t i = 0; i < ELEMENTSOF(default_identities) && !identity_name; i++) {
                        _cleanup_free_ char *candidate =
                            path_join_root(root, default_identities[i]);

                        if (candidate && access(candidate, F_OK) == 0)
                                identity_name = default_identities[i];
                }
                if (!identity_name) {
                        set_result(result, BUILDER_STATE_AUTH_FAILED,
                                   "no identity in the profile, and root has no default key "
                                   "(/root/.ssh/id_ed25519, id_ecdsa, id_rsa)");
                        return -1;
                }
        }
        if (!(identity = path_join_root(root, identity_name))) {
                set_result(result, BUILDER_STATE_AUTH_FAILED, "out of memory");
                return -1;
        }
        if (ssh_pki_import_privkey_file(identity, NULL, NULL, NULL, &private_key) != SSH_OK) {
                set_result(result, BUILDER_STATE_AUTH_FAILED,
                           "the identity %s cannot be read (missing, unreadable, or protected "
                           "by a passphrase)",
                           identity_name);
                return -1;
        }
        *ret_name = identity_name;
        *ret_key = private_key;
        return 0;
}

/* Connected, with the host key checked: logs in and runs Nix. */
static void probe_login(ssh_session session, const struct plan_builder *b, const char *root,
                        const char *identity_text, const struct builder_uri *uri, uint64_t deadline,
                        struct builder_probe *result)
{
        char sealed_name[64];
        const char *identity_name = NULL;
        ssh_key private_key = NULL;
        int k;

        if (load_identity(b, root, identity_text, sealed_name, &identity_name, &private_key,
                          result) < 0)
                return;
        if (!set_remaining(session, deadline)) {
                set_result(result, BUILDER_STATE_TIMEOUT, "no time left to authenticate");
                goto out;
        }
        k = ssh_userauth_publickey(session, NULL, private_key);
        if (k != SSH_AUTH_SUCCESS) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT
                                                      : BUILDER_STATE_AUTH_FAILED,
                           "user %s was not let in with the identity %s%s%s", uri->user,
                           identity_name, k == SSH_AUTH_ERROR ? ": " : "",
                           k == SSH_AUTH_ERROR ? ssh_get_error(session) : "");
                goto out;
        }
        probe_exec(session, uri, deadline, result);
out:
        ssh_key_free(private_key);
}

static void probe_one(const struct plan_builder *b, const char *root, const char *identity_text,
                      uint64_t deadline, struct builder_probe *result)
{
        char pinned_type[64];
        const char *pinned_blob;
        struct builder_uri uri;
        ssh_session session = NULL;
        int k;

        *result = (struct builder_probe){};
        k = builders_parse_uri(b->uri, &uri);
        if (k < 0) {
                set_result(result, BUILDER_STATE_UNREACHABLE, "the URI cannot be used: %s",
                           strerror(-k));
                return;
        }
        if (!split_host_key(b->host_key, pinned_type, &pinned_blob)) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH, "no usable pinned host key");
                return;
        }

        session = ssh_new();
        if (!session) {
                set_result(result, BUILDER_STATE_UNREACHABLE, "out of memory");
                return;
        }
        if (!configure_session(session, &uri, pinned_type)) {
                set_result(result, BUILDER_STATE_UNREACHABLE, "cannot set up the SSH session: %s",
                           ssh_get_error(session));
                goto out;
        }
        if (!set_remaining(session, deadline)) {
                set_result(result, BUILDER_STATE_TIMEOUT, "no time left to connect");
                goto out;
        }
        if (ssh_connect(session) != SSH_OK) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT
                                                      : BUILDER_STATE_UNREACHABLE,
                           "%s", ssh_get_error(session));
                goto out;
        }
        if (check_host_key(session, pinned_type, pinned_blob, result) == 0)
                probe_login(session, b, root, identity_text, &uri, deadline, result);
out:
        ssh_disconnect(session);
        ssh_free(session);
}

static void *probe_thread(void *userdata)
{
        struct probe_job *job = userdata;

        probe_one(job->builder, job->root, job->identity_text, job->deadline, job->result);
        return NULL;
}

int builders_probe(const struct plan *plan, const char *root, const char *const *identities,
                   uint64_t deadline_ms, struct builder_probe *ret_results)
{
        struct probe_job jobs[PROFILE_MAX_BUILDERS];
        pthread_t threads[PROFILE_MAX_BUILDERS];
        struct builder_probe *results;
        uint64_t deadline = monotonic_ms() + deadline_ms;
        size_t n = plan->n_builders, started = 0;
        int k = 0;

        if (n > PROFILE_MAX_BUILDERS)
                return -E2BIG;
        results = calloc(n ?: 1, sizeof(*results));
        if (!results)
                return -ENOMEM;
        for (; started < n; started++) {
                jobs[started] = (struct probe_job){
                    .builder = &plan->builders[started],
                    .root = root ?: "/",
                    .identity_text =
                        identities && plan->builders[started].index < PROFILE_MAX_BUILDERS
                            ? identities[plan->builders[started].index]
                            : NULL,
                    .deadline = deadline,
                    .result = &results[started],
                };
                k = -pthread_create(&threads[started], NULL, probe_thread, &jobs[started]);
                if (k < 0)
                        break;
        }
        for (size_t i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        if (k == 0 && n > 0)
                memcpy(ret_results, results, n * sizeof(*results));
        free(results);
        return k;
}

char *builders_format(const char *uri, const struct builder_probe *probe, char *buf, size_t size)
{
        if (probe->state == BUILDER_STATE_OK)
                snprintf(buf, size, "%s: ok, %llu ms, %s", uri,
                         (unsigned long long)probe->latency_ms, probe->nix_version);
        else
                snprintf(buf, size, "%s: %s: %s", uri, builder_state_to_string(probe->state) ?: "?",
                         probe->error);
        return buf;
}

bool builders_required_ok(const struct plan *plan, const struct builder_probe *results)
{
        for (size_t i = 0; i < plan->n_builders; i++)
                if (plan->builders[i].required && results[i].state != BUILDER_STATE_OK)
                        return false;
        return true;
}
