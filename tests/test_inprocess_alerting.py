"""Alerting in a scheduler, in-process on a manual clock, with a real arbiter and a real
SQLite data-server; the test plays the poller: it runs the checks by answering with chosen
exit codes, and the notifications by recording the jobs it is handed.

- A HARD problem notifies once its state row (with the notification recorded in it) is
  durable; the job carries the expanded command line and its id; its outcome is stored as a
  notification event in the history.
- The notification number and re-notification interval follow Nagios.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from shinha.ids import new_id
from shinha.wire import CheckJob, CheckResult, PullReply, PullRequest, ResultBatch
from tests.inprocess import InProcess, Tree, until

SCHED, DS, ARB, POLLER = "scheduler-1", "dataserver-1", "arbiter-1", "poller-1"

NOTIFY_LINE = ("/bin/echo $NOTIFICATIONTYPE$ $HOSTNAME$/$SERVICEDESC$ $SERVICESTATE$ "
               "#$NOTIFICATIONNUMBER$ $SERVICENOTIFICATIONID$ $CONTACTEMAIL$ $USER9$")
#: A resource macro (a gateway's password, say): in the command line handed to the poller,
#: never in what the data tier stores.
SECRET_MACRO = "gateway-pass-0f3c9"
OBJECTS = """\
define command {
  command_name ok
  command_line /bin/true
}
define command {
  command_name notify-file
  command_line NOTIFY_LINE
}
define contact {
  contact_name alice
  email alice@example.com
  service_notification_commands notify-file
  host_notification_commands notify-file
}
define host {
  host_name h1
  address 127.0.0.1
}
define service {
  host_name h1
  service_description s1
  check_command ok
  check_interval 3
  retry_interval 1
  max_check_attempts 2
  notification_interval 6
  contacts alice
}
""".replace("NOTIFY_LINE", NOTIFY_LINE)


def run(test: Callable[[InProcess], Coroutine[Any, Any, None]], tmp_path: Path,
        objects: str = OBJECTS) -> None:
    async def go() -> None:
        (tmp_path / "resource.cfg").write_text(f"$USER9$={SECRET_MACRO}\n")
        tree = Tree(tmp_path / "etc", objects,
                    main=f"interval_length=10\nresource_file={tmp_path}/resource.cfg\n")
        for name, role in ((ARB, "arbiter"), (SCHED, "scheduler"), (DS, "dataserver"),
                           (POLLER, "poller")):
            tree.add(role, name, check_interval=1, timeout=2, data_timeout=5)
        c = InProcess(tree)
        try:
            await c.start(DS, SCHED, ARB)
            await c.clock.run_for(0)
            await until(c.scheduler(SCHED).loaded.is_set, "the scheduler to load its states")
            await test(c)
        finally:
            await c.stop_all()

    asyncio.run(go())


class Poller:
    """The test's poller: pulls, answers checks with the codes it is told, keeps actions."""

    def __init__(self, c: InProcess) -> None:
        self.c = c
        self.actions: list[CheckJob] = []

    async def pull(self) -> list[CheckJob]:
        request = PullRequest(poller=POLLER, instance="i-1", wait=0)
        code, body = await self.c.request(SCHED, "POST", "/checks/pull",
                                          request.model_dump(mode="json"))
        assert code == 200, (code, body)
        jobs = PullReply.model_validate(body).jobs
        self.actions += [j for j in jobs if j.kind != "check"]
        return [j for j in jobs if j.kind == "check"]

    async def send(self, job: CheckJob, code: int, output: str = "") -> None:
        now = self.c.clock.time()
        result = CheckResult(result_id=new_id(), job_id=job.job_id, host=job.host,
                             service=job.service, return_code=code,
                             output=output or f"code {code}", started=now, finished=now,
                             poller=POLLER, kind=job.kind)
        batch = ResultBatch(poller=POLLER, results=[result]).model_dump(mode="json")
        task = asyncio.create_task(self.c.request(SCHED, "POST", "/checks/results", batch))
        outbox = self.c.scheduler(SCHED).outbox
        await self.c.clock.run_until(lambda: task.done(), 5.0, "the result acknowledged")
        status, body = task.result()
        assert status == 200 and body["acked"] == [result.result_id], (status, body, outbox)

    async def check(self, code: int, within: float = 60.0) -> None:
        """Wait (on the clock) for s1's check, answer it with `code`."""
        jobs: list[CheckJob] = []

        async def ready() -> bool:
            jobs.extend(await self.pull())
            return bool(jobs)

        end = self.c.clock.monotonic() + within
        while not await ready():
            assert self.c.clock.monotonic() < end, "no check handed out"
            await self.c.clock.run_for(1.0)
        for job in jobs:
            await self.send(job, code)

    async def drain_actions(self, seconds: float = 2.0) -> list[CheckJob]:
        """Step the clock a little and pull: the actions handed out meanwhile."""
        before = len(self.actions)
        for _ in range(int(seconds)):
            await self.c.clock.run_for(1.0)
            await self.pull()  # checks pulled here are not answered: they come back later
        return self.actions[before:]


def test_a_hard_problem_notifies_once_recorded_and_renotifies_at_the_interval(
        tmp_path: Path) -> None:
    async def go(c: InProcess) -> None:
        p = Poller(c)
        await p.check(2)  # SOFT 1
        assert await p.drain_actions() == []
        await p.check(2)  # HARD: PROBLEM #1
        actions = await p.drain_actions()
        assert [a.kind for a in actions] == ["notification"]
        line = actions[0].command_line
        assert line.startswith("/bin/echo PROBLEM h1/s1 CRITICAL #1 "), line
        assert line.endswith(f" alice@example.com {SECRET_MACRO}"), line
        sched = c.scheduler(SCHED)
        item = sched.items[("h1", "s1")]
        assert [a.action_id for a in item.state.alert.pending] == [actions[0].job_id]
        # Recorded in the data tier before it runs, without the resource's secret.
        code, page = await c.request(DS, "GET", "/api/services?host=h1", secret=False)
        assert code == 200, page
        row = next(r for r in page["items"] if r["service"] == "s1")
        assert [a["action_id"] for a in row["alert"]["pending"]] == [actions[0].job_id]
        assert SECRET_MACRO not in str(page)
        await p.send(actions[0], 0, "sent")
        assert item.state.alert.pending == []
        code, body = await c.request(DS, "GET", "/api/services/h1/s1/history", secret=False)
        assert code == 200, body
        notes = [e for e in body["items"] if e.get("kind") == "notification"]
        assert [(n["contact"], n["command"], n["return_code"], n["notification_type"])
                for n in notes] == [("alice", "notify-file", 0, "PROBLEM")]
        # Still CRITICAL at the next checks: no new notification before 60 s…
        await p.check(2)
        assert await p.drain_actions() == []
        # …then #2, 60 s after #1.
        await p.check(2)
        actions = await p.drain_actions()
        assert [a.command_line.split()[4] for a in actions] == ["#2"], actions
        await p.send(actions[0], 0)
        # Recovery: one RECOVERY notification.
        await p.check(0)
        actions = await p.drain_actions()
        assert [a.command_line.split()[1] for a in actions] == ["RECOVERY"], actions

    run(go, tmp_path)
