"""A network namespace of our own, for faults loopback alone cannot make.

`isolated_network()` creates a namespace with its own loopback and moves the calling thread
into it: every socket the test opens and every process it starts from then on lives there, so
the rules added to cut a link touch nothing outside the test. A cut is a policy-routing rule
(`ip rule … prohibit`) placed before the lookup of the local table: connecting to the cut
address and port fails at once with EACCES, while the other direction (and every other port)
still works — a one-way partition between two loopback "hosts". Needs root (CAP_SYS_ADMIN)
and iproute2; no iptables or nftables.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

CLONE_NEWNET = 0x40000000
CUT_PREF = 10  # rules that cut a link; the local table is looked up at LOCAL_PREF
LOCAL_PREF = 100


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def unavailable() -> str:
    """Why this machine cannot give a test a namespace ("" when it can)."""
    if os.geteuid() != 0:
        return "a network namespace needs root"
    if shutil.which("ip") is None:
        return "a network namespace needs iproute2 (`ip`)"
    return ""


def require() -> None:
    """Skip when there is no way to get a namespace; in CI that is a failure, not a skip."""
    why = unavailable()
    if why and os.environ.get("CI"):
        pytest.fail(f"{why}: CI runs as root with iproute2 (see Makefile deps)")
    if why:
        pytest.skip(why)


@contextlib.contextmanager
def isolated_network(name: str) -> Iterator[None]:
    """Run the body in a fresh network namespace `name` (loopback up, the local table looked
    up after the cut rules). The calling thread goes back to its own namespace after."""
    namespace = f"shinha-test-{name}-{os.getpid()}"
    _ip("netns", "add", namespace)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            _ip("link", "set", "lo", "up")
            _ip("rule", "add", "pref", str(LOCAL_PREF), "lookup", "local")
            _ip("rule", "del", "pref", "0", "lookup", "local")
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
        _ip("netns", "del", namespace)


def cut(address: str, port: int) -> None:
    """From now on, nobody in the namespace can connect to `address:port`."""
    _ip("rule", "add", "pref", str(CUT_PREF), "to", f"{address}/32", "ipproto", "tcp",
        "dport", str(port), "prohibit")


def heal() -> None:
    """Remove every cut."""
    rules = subprocess.run(["ip", "rule", "show", "pref", str(CUT_PREF)], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for _ in rules:
        _ip("rule", "del", "pref", str(CUT_PREF))
