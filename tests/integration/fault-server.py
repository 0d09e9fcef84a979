#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An HTTP server on 127.0.0.1 that misbehaves on purpose, for testing the agent's fetch.

Usage: fault-server.py PORT_FILE DIR LOG_FILE [LIFETIME_SECONDS [CERT KEY]]

Binds a port the kernel picks and writes it to PORT_FILE (atomically). Every request is
appended to LOG_FILE as "PATH COUNT" (COUNT: how many times that path was asked, this one
included). Exits by itself after LIFETIME_SECONDS (default 120), whatever happens. With CERT
and KEY (PEM files) it speaks HTTPS instead of HTTP.

Behaviour by path prefix (REL is a path under DIR):
  /ok/REL             serves DIR/REL (404 when missing)
  /fail-n/K/REL       503 for the first K requests of this path, then serves DIR/REL
  /late/K/REL         404 for the first K requests of this path, then serves DIR/REL
  /500/REL            always 500
  /404/REL            always 404
  /403/REL            always 403
  /reset/REL          closes the connection with a TCP RST, without an answer
  /truncate/REL       announces a Content-Length larger than the body, sends part, closes
  /stall/REL          sends the headers and 4 bytes, then nothing for 20 s, then closes
  /big/N/REL          N bytes of 'x' with a Content-Length
  /big-nolength/N/REL N bytes of 'x' without a Content-Length, ended by closing
  /redirect/REL       302 to /ok/REL
  /redirect-ftp/REL   302 to ftp://127.0.0.1:1/REL
  /redirect-loop/REL  302 to itself
"""

import collections
import http.server
import os
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time

STALL_SECONDS = 20
CHUNK = 64 * 1024


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up, or our own RST: nothing to report


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1"

    def log_message(self, format, *args):
        pass

    def count(self):
        state = self.server.state
        with state.lock:
            state.counts[self.path] += 1
            n = state.counts[self.path]
            with open(state.log_file, "a") as f:
                f.write(f"{self.path} {n}\n")
        return n

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve_file(self, rel):
        root = os.path.realpath(self.server.state.dir)
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            self.answer(404, b"not found\n")
            return
        with open(path, "rb") as f:
            self.answer(200, f.read())

    def send_bytes(self, n):
        while n > 0:
            k = min(n, CHUNK)
            self.wfile.write(b"x" * k)
            n -= k

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self):
        n = self.count()
        parts = self.path.lstrip("/").split("/", 1)
        kind, rest = parts[0], parts[1] if len(parts) > 1 else ""

        if kind == "ok":
            self.serve_file(rest)
        elif kind in ("fail-n", "late"):
            k, _, rel = rest.partition("/")
            if n <= int(k):
                if kind == "fail-n":
                    self.answer(503, b"try later\n", [("Retry-After", "0")])
                else:
                    self.answer(404, b"not yet\n")
            else:
                self.serve_file(rel)
        elif kind == "500":
            self.answer(500, b"broken\n")
        elif kind == "404":
            self.answer(404, b"not found\n")
        elif kind == "403":
            self.answer(403, b"forbidden\n")
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif kind == "truncate":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial body\n")
            self.wfile.flush()
            self.close_connection = True
        elif kind == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"slow")
            self.wfile.flush()
            time.sleep(STALL_SECONDS)
            self.close_connection = True
        elif kind in ("big", "big-nolength"):
            size = int(rest.partition("/")[0])
            self.send_response(200)
            if kind == "big":
                self.send_header("Content-Length", str(size))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.send_bytes(size)
            except OSError:
                pass  # the client gave up at its cap
        elif kind == "redirect":
            self.answer(302, headers=[("Location", "/ok/" + rest)])
        elif kind == "redirect-ftp":
            self.answer(302, headers=[("Location", "ftp://127.0.0.1:1/" + rest)])
        elif kind == "redirect-loop":
            self.answer(302, headers=[("Location", self.path)])
        else:
            self.answer(400, b"unknown fault\n")


class State:
    def __init__(self, dir, log_file):
        self.dir = dir
        self.log_file = log_file
        self.lock = threading.Lock()
        self.counts = collections.Counter()


def main():
    if len(sys.argv) not in (4, 5, 7):
        sys.exit(__doc__)
    port_file, dir, log_file = sys.argv[1:4]
    lifetime = int(sys.argv[4]) if len(sys.argv) >= 5 else 120

    # Whatever the test does, this process ends: SIGALRM's default action terminates it.
    signal.alarm(lifetime)

    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(dir, log_file)
    if len(sys.argv) == 7:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[5], sys.argv[6])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    open(log_file, "a").close()
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.rename(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
