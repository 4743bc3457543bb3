"""The on-disk journal of receivers and pollers: replay after a crash, bounded size."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shinha.daemon import journal as journal_module
from shinha.daemon.journal import Journal
from shinha.daemon.metrics import Metrics


def test_replay_keeps_only_pending_items(tmp_path: Path) -> None:
    j = Journal(tmp_path / "q.jsonl")
    j.open()
    j.put("a", {"n": 1})
    j.put("b", {"n": 2})
    j.done("a")
    asyncio.run(j.sync())
    # no close(): a crash; a torn last line is ignored
    with open(tmp_path / "q.jsonl", "a") as fh:
        fh.write('{"put": "c", "it')
    again = Journal(tmp_path / "q.jsonl")
    assert again.open() == 1
    assert again.items == {"b": {"n": 2}}


def test_journal_is_compacted_while_running(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(journal_module, "COMPACT_MIN_LINES", 100)
    path = tmp_path / "q.jsonl"
    j = Journal(path)
    j.open()

    async def churn() -> None:
        for n in range(2000):
            j.put(f"k{n}", {"payload": "x" * 100})
            if n % 10:
                j.done(f"k{n}")
            if n % 50 == 0:
                await j.sync()
        await j.sync()

    asyncio.run(churn())
    lines = path.read_text().splitlines()
    assert len(lines) < 2 * 100 + 4 * len(j.items) + 100, len(lines)  # not ~3,800
    j.close()
    again = Journal(path)
    assert again.open() == 200  # every tenth item was never done
    assert set(again.items) == {f"k{n}" for n in range(0, 2000, 10)}


def test_puts_and_dones_during_a_compaction_are_kept(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The compaction writes its snapshot in a thread while the daemon goes on: what is put
    and done meanwhile must land in the new file (they once hit a closed file)."""
    monkeypatch.setattr(journal_module, "COMPACT_MIN_LINES", 100)
    path = tmp_path / "q.jsonl"
    j = Journal(path)
    j.open()
    expected: set[str] = set()

    async def writer(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            j.put(f"w{n}", {"n": n})
            if n % 3:
                j.done(f"w{n}")
            else:
                expected.add(f"w{n}")
            n += 1
            await asyncio.sleep(0)

    async def main() -> int:
        for n in range(500):  # enough done lines for a compaction on the next sync
            j.put(f"k{n}", {"payload": "x" * 200})
            j.done(f"k{n}")
        stop = asyncio.Event()
        task = asyncio.create_task(writer(stop))
        compactions = 0
        for _ in range(20):
            before = j._lines
            await j.sync()
            compactions += j._lines < before
            await asyncio.sleep(0.001)
        stop.set()
        await task
        await j.sync()
        return compactions

    assert asyncio.run(main()) >= 1
    assert set(j.items) == expected
    j.close()
    again = Journal(path)
    again.open()
    assert set(again.items) == expected


def test_large_counters_render_exactly() -> None:
    m = Metrics()
    m.inc("checks_run_total", 1234567)
    assert "shinha_checks_run_total 1234567\n" in m.render()


def test_gauges_set_from_integers_render() -> None:
    m = Metrics()
    m.set("epoch", 7)  # an int, as daemons set it
    m.set("ratio", 0.25)
    text = m.render()
    assert "shinha_epoch 7\n" in text and "shinha_ratio 0.25\n" in text


def test_a_failed_flush_keeps_nothing_of_its_puts_and_loses_no_done(tmp_path: Path) -> None:
    """On a full disk every caller whose puts rode on the failed flush is told so, the file is
    cut back, and the puts are gone from memory; the "done" lines are written later."""
    from shinha.errors import JournalError
    from tests.fs import fill, small_tmpfs

    with small_tmpfs(tmp_path / "small", "1m") as root:
        path = root / "q.jsonl"
        j = Journal(path)
        j.open()
        j.put("old", {"n": 0})
        asyncio.run(j.sync())
        filler = fill(root)
        size = path.stat().st_size

        async def two_requests() -> list[BaseException | None]:
            j.put("a", {"pad": "x" * 8192})
            ticket_a = j.ticket()
            j.put("b", {"pad": "y" * 8192})
            ticket_b = j.ticket()
            j.done("old")
            outcomes = await asyncio.gather(j.commit(ticket_a), j.commit(ticket_b),
                                            return_exceptions=True)
            return list(outcomes)

        outcomes = asyncio.run(two_requests())
        assert all(isinstance(o, JournalError) for o in outcomes), outcomes
        assert "disk full" in str(outcomes[0])
        assert path.stat().st_size == size  # cut back: no torn put on disk
        assert set(j.items) == set() and len(j) == 0  # "old" done, "a" and "b" dropped
        assert j.failing
        filler.unlink()
        j.put("c", {"n": 3})
        asyncio.run(j.commit(j.ticket()))
        assert not j.failing
        j.close()
        again = Journal(path)
        assert again.open() == 1 and set(again.items) == {"c"}  # the done of "old" kept
        again.close()


def test_a_put_is_not_forwardable_before_it_is_durable(tmp_path: Path) -> None:
    j = Journal(tmp_path / "q.jsonl")
    j.open()
    j.put("a", {"n": 1})
    assert "a" not in j.items and len(j) == 1
    assert j.put("a", {"n": 1}) is False  # a re-sent duplicate while staged
    asyncio.run(j.sync())
    assert "a" in j.items
    j.close()
