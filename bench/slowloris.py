#!/usr/bin/env python3
"""How long an honest client waits for a whole answer from `nixprov serve` (default options)
while a slowloris from five addresses (127.0.0.2..6) holds as many connections as the server
lets it, each a request head that is never finished; the honest client connects from 127.0.0.7
and sends GET /healthz. Prints the slowloris's held connections and the honest client's times
(connect to the end of the answer), before and while the slowloris holds.

Usage: bench/slowloris.py [--build DIR] [--per-address N] [--samples N]
       (default: build/, 300 connections from each address, 50 samples)
"""
import argparse, os, socket, statistics, subprocess, sys, tempfile, time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTACKERS = ["127.0.0.%d" % i for i in range(2, 7)]
HONEST = "127.0.0.7"
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def start_server(build, tmp):
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    port_file = os.path.join(tmp, "port")
    cmd = [os.path.join(build, "bin", "nixprov"), "serve", "--listen", "127.0.0.1:0", "--data",
           data, "--port-file", port_file]
    print("server: " + " ".join(cmd))
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
            with open(port_file) as f:
                return server, int(f.read())
        time.sleep(0.05)
    server.kill()
    sys.exit("nixprov serve did not start")


def honest_get(port):
    """Seconds from connect to the end of a whole 200 answer, or None."""
    start = time.monotonic()
    s = socket.socket()
    s.bind((HONEST, 0))
    s.settimeout(30)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        s.close()
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(b'{"ok":true}'):
        return None
    return time.monotonic() - start


def slowloris(port, per_address):
    held = []
    for addr in ATTACKERS:
        for _ in range(per_address):
            s = socket.socket()
            s.bind((addr, 0))
            try:
                s.connect(("127.0.0.1", port))
                s.send(REQUEST[:1])
                held.append(s)
            except OSError:
                s.close()
    time.sleep(1)
    alive = []
    for s in held:
        s.setblocking(False)
        try:
            gone = s.recv(1) == b""
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if gone:
            s.close()
        else:
            alive.append(s)
    return alive


def report(name, times, samples):
    ok = [t for t in times if t is not None]
    if not ok:
        print("%-28s no answer in %d tries" % (name, samples))
        return
    print("%-28s %d/%d answered; median %.2f ms, max %.2f ms" %
          (name, len(ok), samples, statistics.median(ok) * 1000, max(ok) * 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--per-address", type=int, default=300)
    ap.add_argument("--samples", type=int, default=50)
    args = ap.parse_args()
    print("command: " + " ".join([sys.executable] + sys.argv))
    with tempfile.TemporaryDirectory() as tmp:
        server, port = start_server(args.build, tmp)
        try:
            report("idle server", [honest_get(port) for _ in range(args.samples)], args.samples)
            held = slowloris(port, args.per_address)
            print("slowloris: %d connections from %d addresses, %d held" %
                  (args.per_address * len(ATTACKERS), len(ATTACKERS), len(held)))
            # The head deadline (10 s) cuts the held connections; sample well within it.
            times, start = [], time.monotonic()
            while len(times) < args.samples and time.monotonic() - start < 5:
                times.append(honest_get(port))
            report("during the slowloris", times, len(times))
            for s in held:
                s.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
