#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw-socket HTTP clients for test-serve-conn.sh, on 127.0.0.x only.

  raw PORT FILE            sends FILE's bytes as they are, prints everything the server answers
                           until it closes the connection
  slow PORT FILE DELAY [K] sends FILE's first K bytes (default 0) at once, then the rest a
                           byte every DELAY seconds; prints "cut after N of M bytes" when the
                           server closes the connection first, else "sent all M bytes" and
                           the answer
  hold PORT ADDRS N FILE   from each 127.0.0.x in ADDRS (comma-separated), opens N connections
                           and sends FILE's first byte on each, then keeps them open; prints
                           "holding K" (the connections the server has not closed a second
                           later), then holds them until stdin closes
  many PORT ADDR N PATH    N concurrent GET PATH from ADDR; prints "ok K of N" (K with 200)
  idle PORT FILE WAIT      sends FILE (one request, kept alive), reads its answer, then waits
                           up to WAIT seconds for the server to close; prints the status line
                           and "closed" or "still open"
"""
import socket
import sys
import threading
import time


def connect(port, source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    return s


def read_all(s):
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def raw(port, path):
    with open(path, "rb") as f:
        data = f.read()
    s = connect(port)
    s.sendall(data)
    sys.stdout.buffer.write(read_all(s))


def closed_by_server(s):
    """True when the server has closed (EOF or reset) without waiting."""
    s.setblocking(False)
    try:
        data = s.recv(65536)
        return data == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.setblocking(True)


def slow(port, path, delay, fast):
    with open(path, "rb") as f:
        data = f.read()
    s = connect(port)
    s.sendall(data[:fast])
    for i in range(fast, len(data)):
        if closed_by_server(s):
            print("cut after %d of %d bytes" % (i, len(data)))
            return
        try:
            s.send(data[i:i + 1])
        except (ConnectionResetError, BrokenPipeError):
            print("cut after %d of %d bytes" % (i, len(data)))
            return
        time.sleep(delay)
    print("sent all %d bytes" % len(data))
    sys.stdout.flush()
    sys.stdout.buffer.write(read_all(s))


def hold(port, addrs, n, path):
    with open(path, "rb") as f:
        first = f.read(1)
    held = []
    for addr in addrs.split(","):
        for _ in range(n):
            try:
                s = connect(port, addr)
                s.send(first)
                held.append(s)
            except OSError:
                pass
    time.sleep(1)
    alive = [s for s in held if not closed_by_server(s)]
    print("holding %d" % len(alive))
    sys.stdout.flush()
    sys.stdin.read()


def many(port, addr, n, path):
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
    results = [False] * n
    sockets = []
    for _ in range(n):  # all open at once, before any request is sent
        sockets.append(connect(port, addr))

    def one(i):
        try:
            sockets[i].sendall(request)
            results[i] = read_all(sockets[i]).startswith(b"HTTP/1.1 200 ")
        except OSError:
            pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("ok %d of %d" % (sum(results), n))


def idle(port, path, wait):
    with open(path, "rb") as f:
        data = f.read()
    s = connect(port)
    s.sendall(data)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    print(head.split(b"\r\n")[0].decode())
    s.settimeout(wait)
    try:
        print("closed" if s.recv(1) == b"" else "sent more")
    except socket.timeout:
        print("still open")
    except ConnectionResetError:
        print("closed")


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "raw":
        raw(port, sys.argv[3])
    elif mode == "slow":
        slow(port, sys.argv[3], float(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif mode == "hold":
        hold(port, sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif mode == "many":
        many(port, sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif mode == "idle":
        idle(port, sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
