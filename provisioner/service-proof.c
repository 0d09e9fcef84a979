/* SPDX-License-Identifier: MIT */
/* The device's proof on a profile request (proof.h), checked against the enrolled key. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "log.h"
#include "proof.h"
#include "service.h"
#include "util.h"

/* The enrolled signing key of machine_id: 1 with the key, 0 when the machine has none (unknown
 * or unenrolled), or a negative errno and reason. */
static int service_proof_key(struct store *store, const char *machine_id,
                             uint8_t ret_key[static crypto_sign_PUBLICKEYBYTES],
                             char reason[static SERVICE_REASON_MAX])
{
        struct store_trust trust;
        size_t n;
        int r;

        r = store_get_trust(store, machine_id, &trust);
        if (r == -ENOENT || (r >= 0 && !trust.has_keys))
                return 0;
        if (r < 0) {
                log_error_errno(r, "Failed to read the state of machine %s: %m", machine_id);
                return service_fail(reason, service_store_errno(r),
                                    "failed to read the machine's state");
        }
        if (base64_decode_strict(trust.sign_key, strlen(trust.sign_key), ret_key,
                                 crypto_sign_PUBLICKEYBYTES, &n) < 0 ||
            n != crypto_sign_PUBLICKEYBYTES) {
                log_error("The enrolled sign_key of machine %s is not a key.", machine_id);
                return service_fail(reason, -EIO, "failed to read the machine's state");
        }
        return 1;
}

int service_check_proof(struct store *store, const char *machine_id, const char *method,
                        const char *target, const char *header, int64_t now, int64_t window,
                        char reason[static SERVICE_REASON_MAX])
{
        uint8_t key[crypto_sign_PUBLICKEYBYTES];
        struct proof proof;
        int r;

        r = service_proof_key(store, machine_id, key, reason);
        if (r <= 0)
                return r; /* no key: the profile's own rules answer (not enrolled) */
        if (!header)
                return service_fail(reason, -ENOMSG,
                                    "machine %s is enrolled: its requests must carry "
                                    "%s, signed by its device key",
                                    machine_id, PROOF_HEADER);
        if (proof_parse(header, strlen(header), &proof) < 0)
                return service_fail(reason, -ENOMSG,
                                    "malformed %s: expected 'v1 MACHINE-ID UNIXTIME BASE64SIG'",
                                    PROOF_HEADER);
        r = proof_verify(&proof, key, method, target, machine_id, now, window);
        if (r == -EXDEV)
                return service_fail(reason, -EKEYREJECTED, "the proof is for machine %s, not %s",
                                    proof.machine_id, machine_id);
        if (r == -ETIME)
                return service_fail(reason, -EKEYREJECTED,
                                    "the proof's time %" PRId64 " is more than %" PRId64
                                    " s from the server's clock (%" PRId64
                                    "): replayed, or the device's clock is wrong",
                                    proof.time, window, now);
        if (r < 0)
                return service_fail(reason, -EKEYREJECTED,
                                    "the proof does not verify with the enrolled key of "
                                    "machine %s (for %s %s)",
                                    machine_id, method, target);
        return 0;
}
