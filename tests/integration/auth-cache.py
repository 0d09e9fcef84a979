#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A binary cache on 127.0.0.1 that answers 401 without the right credentials.

Usage: auth-cache.py PORT-FILE DIR TOKEN-FILE LOG

Serves DIR (a cache made by nix copy) to requests whose Authorization header carries the token:
HTTP Basic with any user name and the token as the password (what curl sends from a netrc line
"machine HOST password TOKEN": Nix gives its netrc-file to curl), or "Bearer TOKEN". Everything
else gets 401. The token is read from a file, so it is in no command line; the log records each
request's method, path, status and which kind of credentials came, never the credentials."""
import base64
import hmac
import http.server
import socketserver
import sys


def main():
    port_file, root, token_file, log_path = sys.argv[1:5]
    with open(token_file, "rb") as f:
        token = f.read().rstrip(b"\n")
    log = open(log_path, "a", buffering=1)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def authorized(self):
            value = self.headers.get("Authorization", "")
            if value.startswith("Basic "):
                try:
                    decoded = base64.b64decode(value[6:], validate=True)
                except ValueError:
                    return False, "basic-malformed"
                _, sep, password = decoded.partition(b":")
                return bool(sep) and hmac.compare_digest(password, token), "basic"
            if value.startswith("Bearer "):
                return hmac.compare_digest(value[7:].encode(), token), "bearer"
            return False, "none"

        def check(self):
            ok, kind = self.authorized()
            log.write(f"{self.command} {self.path} auth={kind} {'ok' if ok else '401'}\n")
            if not ok:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="nixprov-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            return ok

        def do_GET(self):
            if self.check():
                super().do_GET()

        def do_HEAD(self):
            if self.check():
                super().do_HEAD()

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
