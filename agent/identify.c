/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "enrollment.h"
#include "fileio.h"
#include "identify.h"
#include "macro.h"
#include "util.h"

/* uname's machine → Nix's system double. */
static const struct {
        const char *machine;
        const char *system;
} nix_systems[] = {
    {"x86_64", "x86_64-linux"},       {"aarch64", "aarch64-linux"}, {"armv7l", "armv7l-linux"},
    {"armv6l", "armv6l-linux"},       {"i686", "i686-linux"},       {"riscv64", "riscv64-linux"},
    {"ppc64le", "powerpc64le-linux"},
};

static void closedirp(DIR **d)
{
        if (*d)
                (void)closedir(*d);
}

static int compare_mac(const void *a, const void *b)
{
        return strcmp(a, b);
}

/* ROOT/sys/class/net/NAME/address of every interface but lo. A missing directory (a test root,
 * a container) is no MAC, not an error: the enrollment works without one. */
static void identify_macs(const char *root, struct identity *id)
{
        _cleanup_free_ char *dir_path = path_join_root(root, "/sys/class/net");
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;

        if (!dir_path)
                return;
        dir = opendir(dir_path);
        if (!dir)
                return;
        while ((de = readdir(dir)) && id->n_macs < IDENTITY_MACS_MAX) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t size;

                if (de->d_name[0] == '.' || streq(de->d_name, "lo"))
                        continue;
                if (asprintf(&path, "%s/%s/address", dir_path, de->d_name) < 0) {
                        path = NULL;
                        return;
                }
                if (read_file_bounded(path, 64, &text, &size) < 0)
                        continue;
                text[strcspn(text, "\n")] = '\0';
                if (!enrollment_mac_is_valid(text) || streq(text, "00:00:00:00:00:00"))
                        continue;
                memcpy(id->macs[id->n_macs++], text, IDENTITY_MAC_SIZE);
        }
        qsort(id->macs, id->n_macs, IDENTITY_MAC_SIZE, compare_mac);
}

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

        identify_macs(root, &id);
        *ret = id;
        return 0;
}
