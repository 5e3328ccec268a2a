#!/usr/bin/env python3
"""A network link with a fixed delay between two network namespaces, for
measuring data-parallel training over a slow network where `tc netem` is not
available (a kernel without sch_netem).

It makes a TUN device in each namespace and forwards every packet from one to
the other DELAY_MS after it was sent, in order (a constant delay keeps the
order). The shell then gives the devices their addresses, for example

    ip -n nbA addr add 10.78.0.1 peer 10.78.0.2 dev dlA
    ip -n nbA link set dlA mtu 65000 up

and the same for dlB in nbB. Runs until killed; prints `ready` once both
devices exist.

Usage: delayed_link.py NAMESPACE_A NAMESPACE_B DELAY_MS
"""
import ctypes
import fcntl
import heapq
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


def enter(namespace):
    """Moves this thread into a named network namespace (as `ip netns exec`)."""
    try:
        fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    except OSError as e:
        sys.exit(f"delayed_link: no network namespace {namespace}: {e.strerror}")
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit(f"delayed_link: cannot enter namespace {namespace}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)


def tun(name):
    """A TUN device called `name` in the current namespace, non-blocking."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    ns_a, ns_b = sys.argv[1], sys.argv[2]
    try:
        delay_ms = float(sys.argv[3])
    except ValueError:
        sys.exit(f"delayed_link: DELAY_MS {sys.argv[3]!r} is not a number")
    if not delay_ms >= 0:
        sys.exit(f"delayed_link: DELAY_MS {delay_ms} must be 0 or more")
    delay = delay_ms / 1000.0
    enter(ns_a)
    a = tun("dlA")
    enter(ns_b)
    b = tun("dlB")
    print("ready", flush=True)
    other = {a: b, b: a}
    # Packets in flight: (due time, sequence number, destination, bytes).
    flight, seq = [], 0
    while True:
        now = time.monotonic()
        while flight and flight[0][0] <= now:
            _, _, dst, packet = heapq.heappop(flight)
            try:
                os.write(dst, packet)
            except (BlockingIOError, OSError):
                # A full queue or a device not yet up: dropped, as a real
                # link would drop it.
                pass
        wait = max(0.0, flight[0][0] - now) if flight else None
        ready, _, _ = select.select([a, b], [], [], wait)
        now = time.monotonic()
        for src in ready:
            while True:
                try:
                    packet = os.read(src, 65536)
                except BlockingIOError:
                    break
                heapq.heappush(flight, (now + delay, seq, other[src], packet))
                seq += 1


if __name__ == "__main__":
    main()
