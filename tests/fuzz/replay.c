/* SPDX-License-Identifier: MIT */
/* Runs a libFuzzer harness without libFuzzer: feeds it every file of the directories (or the
 * files) named on the command line, so the seed corpus and every crash ever found are replayed
 * by CTest under the sanitizers of that build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_file_bounded(path, 16 * 1024 * 1024, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        (void)LLVMFuzzerTestOneInput((const uint8_t *)data, size);
        return 0;
}

int main(int argc, char **argv)
{
        unsigned n = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        n++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                while ((de = readdir(d))) {
                        _cleanup_free_ char *path = NULL;

                        if (de->d_name[0] == '.')
                                continue;
                        if (asprintf(&path, "%s/%s", argv[i], de->d_name) < 0 ||
                            replay_file(path) < 0) {
                                closedir(d);
                                return EXIT_FAILURE;
                        }
                        n++;
                }
                closedir(d);
        }
        if (n == 0) {
                fprintf(stderr, "no inputs replayed\n");
                return EXIT_FAILURE;
        }
        printf("replayed %u inputs\n", n);
        return EXIT_SUCCESS;
}
