/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "identify.h"
#include "util.h"

/* uname's machine → Nix's system double. */
static const struct {
        const char *machine;
        const char *system;
} nix_systems[] = {
        {"x86_64", "x86_64-linux"},   {"aarch64", "aarch64-linux"}, {"armv7l", "armv7l-linux"},
        {"armv6l", "armv6l-linux"},   {"i686", "i686-linux"},       {"riscv64", "riscv64-linux"},
        {"ppc64le", "powerpc64le-linux"},
};

int identify(const char *root, const char *machine_id_override, struct identity *ret)
{
        struct identity id = {};
        struct utsname u;
        struct sysinfo si;
        long n;
        int r;

        if (machine_id_override)
                r = machine_id_normalize(machine_id_override, id.machine_id);
        else
                r = machine_id_read(root, id.machine_id);
        if (r < 0)
                return r;

        if (gethostname(id.hostname, sizeof(id.hostname) - 1) < 0)
                id.hostname[0] = '\0';

        if (uname(&u) == 0) {
                for (size_t i = 0; i < ELEMENTSOF(nix_systems); i++)
                        if (streq(u.machine, nix_systems[i].machine))
                                snprintf(id.system, sizeof(id.system), "%s", nix_systems[i].system);
                if (!id.system[0])
                        snprintf(id.system, sizeof(id.system), "%.20s-linux", u.machine);
        }

        n = sysconf(_SC_NPROCESSORS_ONLN);
        id.cpus = n > 0 ? (unsigned)n : 1;
        if (sysinfo(&si) == 0)
                id.memory_bytes = (uint64_t)si.totalram * si.mem_unit;

        *ret = id;
        return 0;
}
