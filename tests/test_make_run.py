"""`make run` on this checkout: the default cluster comes up, checks have results within 30 s,
and Ctrl-C stops every daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.cluster import wait_for

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return dict(json.loads(resp.read()))


def test_make_run_brings_up_the_default_cluster() -> None:
    log = ROOT / "var" / "make-run-test.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "run"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    try:
        def all_alive() -> bool:
            view = _get("http://127.0.0.1:7770/cluster")
            daemons = view["daemons"]
            assert isinstance(daemons, list)
            return bool(view["leading"]) and len(daemons) == 5 and all(
                d["alive"] and d["last_contact"] for d in daemons)

        wait_for(all_alive, 30, "five daemons alive in `make run`'s cluster view")

        def results() -> bool:
            page = _get("http://127.0.0.1:7772/api/services?limit=100")
            items = page["items"]
            assert isinstance(items, list)
            return any(row["state"] != 4 and row["output"] for row in items)

        wait_for(results, max(1.0, 30 - (time.monotonic() - started)),
                 "check results in the data-server within 30 s of `make run`")
        status = subprocess.run([str(ROOT / ".venv" / "bin" / "shinha"), "status", "-c",
                                 "etc/shinha.cfg"], cwd=ROOT, capture_output=True, text=True,
                                timeout=30, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("alive") == 5, status.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    assert "all daemons stopped" in text, text[-2000:]
