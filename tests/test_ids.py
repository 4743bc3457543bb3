"""Ids made from a per-process random prefix and a counter: unique, also across a fork."""

from __future__ import annotations

import os

from shinha.ids import new_id


def test_ids_are_unique_hex_of_uuid_length() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    mine = {new_id() for _ in range(100)}
    with os.fdopen(read) as fh:
        theirs = set(fh.read().split())
    os.waitpid(pid, 0)
    assert len(theirs) == 100 and not mine & theirs
    assert {i[:20] for i in theirs} != {i[:20] for i in mine}  # another prefix
