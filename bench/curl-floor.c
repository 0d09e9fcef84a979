/* SPDX-License-Identifier: MIT */
/* The memory floor of any program that fetches over HTTP with this machine's libcurl: loads it,
 * initializes it as the agent does, makes one GET of argv[1], and exits. bench/agent-overhead.py
 * compiles it and measures its peak RSS next to the agent's. */
#include <curl/curl.h>

static size_t discard(char *data, size_t size, size_t n, void *userdata)
{
        (void)data;
        (void)userdata;
        return size * n;
}

int main(int argc, char **argv)
{
        CURL *curl;

        if (argc != 2 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                return 2;
        curl = curl_easy_init();
        if (!curl)
                return 1;
        curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        CURLcode c = curl_easy_perform(curl);
        curl_easy_cleanup(curl);
        curl_global_cleanup();
        return c == CURLE_OK ? 0 : 1;
}
