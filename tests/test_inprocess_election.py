"""The master-token election (shinha.daemon.election), in-process on a manual clock, among
real data-servers (SQLite, master-only jobs every second) and real pollers.

- The highest token is master everywhere, at term 1; only the master runs the master jobs.
- The master stops: each survivor names the next highest token master once the master has
  been silent for more than 2 × server_threshold — at the first evaluation after that (a
  quarter threshold), never before — in a new term, and the master jobs move with it.
- The master comes back: the highest token takes the role back at once, in one more term.
  On a tie the incumbent keeps it: the returning one (the lowest name, master before) does
  not take it back.
- A server whose election loop stopped but that still answers its peers' beats is not down.
- A poller that becomes master covers the downed poller (/status owns.covering), not before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from shinha.dataserver.daemon import DataserverDaemon
from shinha.poller.daemon import PollerDaemon
from tests.inprocess import InProcess, Tree, run_watching, until

THRESHOLD = 1.0
DOWN_AFTER = 2 * THRESHOLD
TICK = THRESHOLD / 4  # how often each server evaluates the election
STORE = """\
define module {
  module_name store
  module_type sqlite
  jobs_interval 1
}
"""


@asynccontextmanager
async def servers(tmp_path: Path, role: str, tokens: dict[str, int]) -> AsyncIterator[InProcess]:
    """Servers of `role` with these master tokens, started at the same clock time."""
    tree = Tree(tmp_path / "etc", STORE if role == "dataserver" else "")
    for name, token in tokens.items():
        extra: dict[str, object] = ({"modules": "store"} if role == "dataserver" else
                                    {"max_workers": 1, "takeover": "master"})
        tree.add(role, name, master=token, server_threshold=int(THRESHOLD), timeout=2,
                 **extra)
    c = InProcess(tree)
    try:
        await c.start(*tokens)
        yield c
    finally:
        await c.stop_all()


def election(c: InProcess, name: str) -> Any:
    daemon = c.daemons[name]
    assert isinstance(daemon, DataserverDaemon | PollerDaemon)
    return daemon.election


def views(c: InProcess) -> dict[str, tuple[str, int]]:
    return {name: (election(c, name).master, election(c, name).term) for name in c.daemons}


def stays(c: InProcess, expected: dict[str, tuple[str, int]]) -> Callable[[], None]:
    """A check for run_watching: every server names this (master, term)."""
    def check() -> None:
        assert views(c) == expected, (c.clock.monotonic(), views(c))
    return check


def job_runs(c: InProcess) -> dict[str, int]:
    return {name: c.dataserver(name).job_runs for name in c.daemons}


async def stop_after_a_beat(c: InProcess, name: str) -> dict[str, float]:
    """Stop `name` right after the others last heard it; return when each last did."""
    others = [n for n in c.daemons if n != name]
    clock = c.clock
    await clock.run_until(lambda: all(election(c, n).last_contact.get(name) == clock.monotonic()
                                      for n in others), 2 * THRESHOLD, "a heartbeat")
    heard = {n: election(c, n).last_contact[name] for n in others}
    await c.stop(name)
    return heard


async def watch_takeover(c: InProcess, gone: str, heir: str, heard: dict[str, float]
                         ) -> dict[str, float]:
    """Step the clock until every survivor names `heir` master; the clock time each did. At
    every step before, a survivor names `gone`, and sees nobody down until `gone` has been
    silent for more than DOWN_AFTER since it last `heard` it."""
    clock = c.clock
    changed: dict[str, float] = {}

    def look() -> bool:
        for name in c.daemons:
            master = election(c, name).master
            if master == heir:
                changed.setdefault(name, clock.monotonic())
                continue
            assert master == gone, (name, master)
            silent = clock.monotonic() - heard[name]
            assert election(c, name).down() == ([gone] if silent > DOWN_AFTER else []), name
        return len(changed) == len(c.daemons)

    await clock.run_until(look, 2 * DOWN_AFTER, f"{heir} master everywhere")
    return changed


def test_the_highest_token_leads_and_the_next_takes_over_after_2_thresholds(
        tmp_path: Path) -> None:
    async def go() -> None:
        tokens = {"ds-1": 1, "ds-5": 5, "ds-7": 7}
        async with servers(tmp_path, "dataserver", tokens) as c:
            clock = c.clock
            assert views(c) == {n: ("ds-7", 1) for n in tokens}  # tokens from the config
            await run_watching(clock, 5 * THRESHOLD, stays(c, {n: ("ds-7", 1) for n in tokens}))
            runs = job_runs(c)
            assert runs["ds-7"] == 5 and runs["ds-5"] == runs["ds-1"] == 0

            heard = await stop_after_a_beat(c, "ds-7")
            changed = await watch_takeover(c, "ds-7", "ds-5", heard)
            for name, at in changed.items():
                silent = at - heard[name]
                assert DOWN_AFTER < silent <= DOWN_AFTER + TICK, (name, silent)
            assert views(c) == {"ds-1": ("ds-5", 2), "ds-5": ("ds-5", 2)}
            owns = (await c.status("ds-5"))["owns"]
            assert owns["election"] == {"master": "ds-5", "term": 2, "down": ["ds-7"],
                                        "alive": ["ds-1", "ds-5"]}
            before = job_runs(c)
            await run_watching(clock, 3 * THRESHOLD, lambda: None)
            after = job_runs(c)
            assert after["ds-5"] - before["ds-5"] == 3 and after["ds-1"] == 0

            # ds-7 is back (a new process): the highest token takes the role back at once.
            await c.start("ds-7")
            await clock.run_until(lambda: all(m == "ds-7" for m, _ in views(c).values()),
                                  TICK, "ds-7 master again everywhere")
            assert views(c) == {n: ("ds-7", 3) for n in tokens}
            assert all(election(c, n).down() == [] for n in tokens)
            before = job_runs(c)
            await run_watching(clock, 3 * THRESHOLD, stays(c, {n: ("ds-7", 3) for n in tokens}))
            after = job_runs(c)
            assert after["ds-5"] == before["ds-5"] and after["ds-7"] > 0

    asyncio.run(go())


def test_a_master_whose_election_loop_stops_but_answers_is_not_down(tmp_path: Path) -> None:
    """Heard from means either way: a server whose own loop stopped (no beats from it) still
    answers its peers' beats, so it is not down and stays master."""
    async def go() -> None:
        tokens = {"ds-1": 1, "ds-7": 7}
        async with servers(tmp_path, "dataserver", tokens) as c:
            clock = c.clock
            await clock.run_for(THRESHOLD)
            [loop] = [t for t in asyncio.all_tasks() if t.get_name() == "ds-7:election"]
            loop.cancel()
            await until(loop.done, "ds-7's election loop to stop")
            await run_watching(clock, 3 * DOWN_AFTER, stays(c, {n: ("ds-7", 1) for n in tokens}))
            assert election(c, "ds-1").down() == []
            assert clock.monotonic() - election(c, "ds-1").last_contact["ds-7"] <= THRESHOLD

    asyncio.run(go())


def test_on_a_tie_the_incumbent_keeps_the_role(tmp_path: Path) -> None:
    async def go() -> None:
        async with servers(tmp_path, "dataserver", {"ds-a": 4, "ds-b": 4}) as c:
            clock = c.clock
            await clock.run_for(THRESHOLD)
            assert views(c) == {"ds-a": ("ds-a", 1), "ds-b": ("ds-a", 1)}  # the lowest name
            heard = await stop_after_a_beat(c, "ds-a")
            await watch_takeover(c, "ds-a", "ds-b", heard)
            assert views(c) == {"ds-b": ("ds-b", 2)}

            # ds-a returns: at its first heartbeat it learns term 2 and its master, and the
            # tie stays with the incumbent. Nobody changes master again.
            await c.start("ds-a")
            await clock.run_for(0)
            assert views(c) == {"ds-a": ("ds-b", 2), "ds-b": ("ds-b", 2)}

            await run_watching(clock, 3 * DOWN_AFTER,
                               stays(c, {"ds-a": ("ds-b", 2), "ds-b": ("ds-b", 2)}))
            assert c.dataserver("ds-a").job_runs == 0

    asyncio.run(go())


def test_a_poller_covers_a_downed_poller_once_it_is_master(tmp_path: Path) -> None:
    async def go() -> None:
        async with servers(tmp_path, "poller", {"poller-1": 1, "poller-5": 5}) as c:
            clock = c.clock
            low = c.poller("poller-1")
            await clock.run_for(THRESHOLD)
            assert views(c) == {"poller-1": ("poller-5", 1), "poller-5": ("poller-5", 1)}
            assert low.covering() == ([], [])
            # Every loop of a poller sleeps on the clock (the return loop used real time).
            asleep = {t.get_name() for t in clock.sleepers()}
            assert {"poller-1:return", "poller-1:election"} <= asleep, asleep

            heard = await stop_after_a_beat(c, "poller-5")
            changed = await watch_takeover(c, "poller-5", "poller-1", heard)
            assert DOWN_AFTER < changed["poller-1"] - heard["poller-1"] <= DOWN_AFTER + TICK
            assert low.covering() == (["poller-5"], [])
            owns = (await c.status("poller-1"))["owns"]
            assert owns["covering"] == ["poller-5"]
            assert owns["election"]["master"] == "poller-1"

            # poller-5 returns: it is master again at once, and poller-1 covers nobody.
            await c.start("poller-5")
            await clock.run_until(lambda: low.election.master == "poller-5", TICK,
                                  "poller-5 master again")
            assert low.covering() == ([], [])
            assert (await c.status("poller-1"))["owns"]["covering"] == []

    asyncio.run(go())
