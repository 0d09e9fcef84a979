/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the X-Nixprov-Proof header (proof.h), which nixprov serve reads from
 * the network on every profile request of an enrolled machine: proof_parse() must refuse all
 * but the exact form, never read past size, and a proof it takes must hold what the format
 * allows; proof_verify() on it must not crash and must refuse (the key is not the signer's). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "machine_id.h"
#include "proof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint8_t key[crypto_sign_PUBLICKEYBYTES] = {1};
        char *copy = malloc(size ? size : 1);
        struct proof p;
        int r;

        if (!copy)
                return 0;
        if (size)
                memcpy(copy, data, size); /* exactly size bytes: overreads are caught */
        if (proof_parse(copy, size, &p) == 0) {
                if (!machine_id_is_canonical(p.machine_id) || p.time < 0 || size >= PROOF_VALUE_MAX)
                        abort();
                r = proof_verify(&p, key, "GET", "/v1/machines/x/profile", p.machine_id, p.time,
                                 PROOF_WINDOW_DEFAULT);
                if (r == 0)
                        abort();
        }
        free(copy);
        return 0;
}
