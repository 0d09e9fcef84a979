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
        uint64_t deadline; /* CLOCK_MONOTONIC milliseconds */
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

static void probe_exec(ssh_session session, const struct builder_uri *uri, uint64_t deadline,
                       struct builder_probe *result)
{
        char command[BUILDERS_PROGRAM_MAX + 16], out[BUILDERS_OUTPUT_MAX + 1];
        char err[BUILDERS_OUTPUT_MAX + 1];
        ssh_channel channel = NULL;
        size_t n = 0, n_err = 0;
        uint64_t started;
        int status, k;

        snprintf(command, sizeof(command), "%s --version", uri->program);
        if (!set_remaining(session, deadline)) {
                set_result(result, BUILDER_STATE_TIMEOUT, "timed out before running %s",
                           uri->program);
                return;
        }
        channel = ssh_channel_new(session);
        if (!channel || ssh_channel_open_session(channel) != SSH_OK) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT : BUILDER_STATE_UNREACHABLE,
                           "cannot open a session: %s", ssh_get_error(session));
                goto out;
        }
        started = monotonic_ms();
        if (ssh_channel_request_exec(channel, command) != SSH_OK) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT : BUILDER_STATE_NIX_MISSING,
                           "cannot run %s: %s", uri->program, ssh_get_error(session));
                goto out;
        }
        for (;;) {
                int ms = remaining_ms(deadline);

                if (ms == 0) {
                        set_result(result, BUILDER_STATE_TIMEOUT,
                                   "%s --version did not finish in time", uri->program);
                        goto out;
                }
                k = ssh_channel_read_timeout(channel, out + n, (uint32_t)(BUILDERS_OUTPUT_MAX - n),
                                             0, ms);
                if (k == SSH_ERROR) {
                        set_result(result, BUILDER_STATE_UNREACHABLE, "reading from %s: %s",
                                   uri->program, ssh_get_error(session));
                        goto out;
                }
                if (k > 0) {
                        n += (size_t)k;
                        if (n == BUILDERS_OUTPUT_MAX || memchr(out, '\n', n))
                                break;
                        continue;
                }
                /* libssh counts a channel with unread stderr as not at its end: read it (the
                 * first bytes are kept for the error message, the rest dropped). */
                for (;;) {
                        char discard[1024];
                        size_t room = BUILDERS_OUTPUT_MAX - n_err;

                        k = ssh_channel_read_nonblocking(channel, room ? err + n_err : discard,
                                                         room ? (uint32_t)room : sizeof(discard),
                                                         1);
                        if (k <= 0)
                                break;
                        if (room)
                                n_err += (size_t)k;
                }
                if (ssh_channel_is_eof(channel))
                        break;
        }
        err[n_err] = '\0';
        err[strcspn(err, "\r\n")] = '\0';
        result->latency_ms = monotonic_ms() - started;
        out[n] = '\0';
        out[strcspn(out, "\r\n")] = '\0';

        (void)set_remaining(session, deadline);
        status = ssh_channel_get_exit_status(channel);
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
                goto out;
        }
        result->state = BUILDER_STATE_OK;
        result->error[0] = '\0';
        out[sizeof(result->nix_version) - 1] = '\0';
        memcpy(result->nix_version, out, strlen(out) + 1);
        for (char *c = result->nix_version; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
out:
        if (channel) {
                ssh_channel_close(channel);
                ssh_channel_free(channel);
        }
}

static void probe_one(const struct plan_builder *b, const char *root, const char *identity_text,
                      uint64_t deadline, struct builder_probe *result)
{
        _cleanup_free_ char *identity = NULL;
        char pinned_type[64], sealed_name[64];
        const char *pinned_blob, *identity_name;
        struct builder_uri uri;
        ssh_session session = NULL;
        ssh_key server_key = NULL, private_key = NULL;
        char *blob = NULL;
        const char *type;
        int port, k;

        *result = (struct builder_probe){};
        k = builders_parse_uri(b->uri, &uri);
        if (k < 0) {
                set_result(result, BUILDER_STATE_UNREACHABLE, "the URI cannot be used: %s",
                           strerror(-k));
                return;
        }
        pinned_blob = b->host_key ? strchr(b->host_key, ' ') : NULL;
        if (!pinned_blob || (size_t)(pinned_blob - b->host_key) >= sizeof(pinned_type)) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH, "no usable pinned host key");
                return;
        }
        memcpy(pinned_type, b->host_key, (size_t)(pinned_blob - b->host_key));
        pinned_type[pinned_blob - b->host_key] = '\0';
        pinned_blob++;

        session = ssh_new();
        if (!session) {
                set_result(result, BUILDER_STATE_UNREACHABLE, "out of memory");
                return;
        }
        port = (int)uri.port;
        bool no = false;
        int zero = 0;
        if (ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_HOST, uri.host) != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_PORT, &port) != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_USER, uri.user) != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_STRICTHOSTKEYCHECK, &zero) != SSH_OK ||
            ssh_options_set(session, SSH_OPTIONS_HOSTKEYS, hostkey_algorithms(pinned_type)) !=
                SSH_OK) {
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
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT : BUILDER_STATE_UNREACHABLE,
                           "%s", ssh_get_error(session));
                goto out;
        }

        /* The pinned key, exactly, before anything is offered to this server. */
        if (ssh_get_server_publickey(session, &server_key) != SSH_OK ||
            !(type = ssh_key_type_to_char(ssh_key_type(server_key))) ||
            ssh_pki_export_pubkey_base64(server_key, &blob) != SSH_OK) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH,
                           "host key mismatch: the server's key cannot be read");
                goto out;
        }
        if (!streq(type, pinned_type) || !streq(blob, pinned_blob)) {
                set_result(result, BUILDER_STATE_HOST_KEY_MISMATCH,
                           "host key mismatch: possible man-in-the-middle (the server shows a "
                           "different %s key)",
                           type);
                goto out;
        }

        identity_name = b->identity_path;
        if (b->identity_sealed && identity_text) {
                /* The key opened in the plan phase, from its locked memory: the file is written
                 * only after this phase. */
                snprintf(sealed_name, sizeof(sealed_name), "builders[%zu].identity (sealed)",
                         b->index);
                identity_name = sealed_name;
                if (ssh_pki_import_privkey_base64(identity_text, NULL, NULL, NULL, &private_key) !=
                    SSH_OK) {
                        set_result(result, BUILDER_STATE_AUTH_FAILED,
                                   "the identity %s is not a private key libssh can read "
                                   "(OpenSSH or PEM, without a passphrase)",
                                   identity_name);
                        goto out;
                }
        } else if (!identity_name) {
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
                        goto out;
                }
        }
        if (!private_key && !(identity = path_join_root(root, identity_name))) {
                set_result(result, BUILDER_STATE_AUTH_FAILED, "out of memory");
                goto out;
        }
        if (!private_key &&
            ssh_pki_import_privkey_file(identity, NULL, NULL, NULL, &private_key) != SSH_OK) {
                set_result(result, BUILDER_STATE_AUTH_FAILED,
                           "the identity %s cannot be read (missing, unreadable, or protected "
                           "by a passphrase)",
                           identity_name);
                goto out;
        }
        if (!set_remaining(session, deadline)) {
                set_result(result, BUILDER_STATE_TIMEOUT, "no time left to authenticate");
                goto out;
        }
        k = ssh_userauth_publickey(session, NULL, private_key);
        if (k != SSH_AUTH_SUCCESS) {
                set_result(result,
                           monotonic_ms() >= deadline ? BUILDER_STATE_TIMEOUT : BUILDER_STATE_AUTH_FAILED,
                           "user %s was not let in with the identity %s%s%s", uri.user,
                           identity_name, k == SSH_AUTH_ERROR ? ": " : "",
                           k == SSH_AUTH_ERROR ? ssh_get_error(session) : "");
                goto out;
        }

        probe_exec(session, &uri, deadline, result);
out:
        ssh_string_free_char(blob);
        ssh_key_free(server_key);
        ssh_key_free(private_key);
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
