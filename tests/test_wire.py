"""Shapes on the wire: each role's /status `owns` is its own model, and every JSON body built
by hand (for speed) parses as the model it stands for, so that renaming a field of the model
breaks a test here rather than a peer in production."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shinha import ctl
from shinha.daemon.journal import done_line, put_line
from shinha.poller.daemon import journal_item, result_batch
from shinha.receiver.deadletter import DeadLetters
from shinha.receiver.forward import queue_item
from shinha.scheduler.items import pull_reply
from shinha.wire import (
    OWNS_BY_ROLE,
    ROLES,
    ArbiterOwns,
    CheckJob,
    CheckResult,
    ClusterView,
    CommandLines,
    DaemonView,
    DatabaseTopology,
    DatabaseView,
    DeadLetter,
    Downtime,
    ElectionView,
    Event,
    EventEntry,
    ExternalCommand,
    HistoryPage,
    IngestBatch,
    JournalDone,
    JournalPut,
    NodeStatus,
    PassiveBatch,
    PassiveResult,
    PerfDatum,
    PollerJournalItem,
    PollerOwns,
    PullReply,
    QueuedCommand,
    QueuedResult,
    ReceiverOwns,
    ResultBatch,
    ResultEntry,
    SchedulerOwns,
    StateAnswer,
    StateRow,
    StatusReply,
)
from shinha.wirejson import SLICE, json_bytes

STATUS = {"name": "x", "version": "1", "pid": 1, "started_at": 0.0, "active": True,
          "spare": False, "epoch": 1, "config_hash": ""}
#: What ArbiterDaemon.owns() and ReceiverDaemon.owns() return (dicts, validated into their
#: models when /status is built).
ARBITER_OWNS: dict[str, Any] = {
    "leading": True, "highest_epoch_seen": 3, "parts": ["scheduler-1"], "hosts": 2,
    "services": 5, "standing_in": {"scheduler-spare": "scheduler-1"}, "degraded": {},
    "config_mismatch": False, "fenced": "", "master": "arbiter-master"}
RECEIVER_OWNS: dict[str, Any] = {
    "queued": 4, "dead_letters": 1, "waiting_for_a_scheduler": 0,
    "schedulers_unreachable": ["scheduler-2"], "schedulers_refusing": [],
    "journal_failing": False}


def scheduler_owns(**latency: float) -> SchedulerOwns:
    return SchedulerOwns(part="scheduler-1", hosts=2, services=5, checks=7, problems=1,
                         pending=0, in_flight=2, ready=0, outbox=3, states_loaded=True,
                         results_total=40, pollers_seen=["poller-1"], **latency)


def test_every_role_has_its_owns_model() -> None:
    assert set(OWNS_BY_ROLE) == set(ROLES)


@pytest.mark.parametrize(("role", "owns", "model"), [("arbiter", ARBITER_OWNS, ArbiterOwns),
                                                     ("receiver", RECEIVER_OWNS, ReceiverOwns)])
def test_an_owns_dict_becomes_its_roles_model(role: str, owns: dict[str, Any],
                                              model: type) -> None:
    reply = StatusReply.model_validate({**STATUS, "role": role, "owns": owns})
    assert type(reply.owns) is model
    # The JSON of /status keeps the keys the daemons always sent.
    assert json.loads(reply.model_dump_json())["owns"] == owns


def test_status_json_parses_back_into_the_roles_model() -> None:
    owns = PollerOwns(election=ElectionView(master="poller-1", term=2, down=[],
                                            alive=["poller-1", "poller-2"]),
                      covering=[], schedulers=["scheduler-1"], running=3, unacked=0,
                      capacity=61, tags=["None"])
    text = StatusReply(**STATUS, role="poller", owns=owns).model_dump_json()
    assert "schema_version" not in json.loads(text)["owns"]["election"]
    assert StatusReply.model_validate_json(text).owns == owns


def test_latency_keys_appear_once_there_are_samples() -> None:
    assert not any(k.startswith("latency") for k in json.loads(
        scheduler_owns().model_dump_json()))
    figures = {"latency_p50": 0.01, "latency_p99": 0.2, "latency_max": 0.3,
               "latency_samples": 50}
    dumped = json.loads(scheduler_owns(**figures).model_dump_json())
    assert {k: dumped[k] for k in figures} == figures


def test_owns_of_another_role_or_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="a poller holds PollerOwns, not SchedulerOwns"):
        StatusReply(**STATUS, role="poller", owns=scheduler_owns())
    with pytest.raises(ValidationError):
        StatusReply.model_validate({**STATUS, "role": "receiver",
                                    "owns": {**RECEIVER_OWNS, "surprise": 1}})


# --- bodies built by hand -----------------------------------------------------------------


def check_result(n: int = 0, **changes: Any) -> CheckResult:
    values: dict[str, Any] = dict(
        result_id=f"result-{n:04d}", job_id=f"job-{n}", host="h\u00f4te \"1\"",
        service="svc\\n", return_code=n % 4, output="OK \u00e9t\u00e9 | a=1",
        long_output="line 2\nline 3", perfdata=[PerfDatum(label="a", value=1.5e-300,
                                                            uom="s", warn="2", min=0.0)],
        started=1_700_000_000.125, finished=1_700_000_001.5, latency=0.25, poller="poller-1")
    values.update(changes)
    return CheckResult.model_validate(values)


def test_poller_result_batch_is_a_result_batch() -> None:
    results = [check_result(n) for n in range(3)]
    body = result_batch("poller \"x\"", [r.model_dump_json() for r in results])
    assert ResultBatch.model_validate_json(body) == ResultBatch(poller="poller \"x\"",
                                                                results=results)
    assert ResultBatch.model_validate_json(result_batch("p", [])).results == []


def test_poller_journal_item_is_a_poller_journal_item() -> None:
    result = check_result()
    line = put_line(result.result_id, journal_item(result.model_dump_json(), "sched\u00fcler"))
    put = JournalPut.model_validate_json(line)
    assert put.put == result.result_id
    # Replayed, it comes back as json.loads gives it: the poller validates it then.
    assert PollerJournalItem.model_validate(put.item) == PollerJournalItem(
        result=result, scheduler="sched\u00fcler")


def test_scheduler_pull_reply_is_a_pull_reply() -> None:
    jobs = [CheckJob(job_id=f"j{n}", host="h", service=f"s{n}", command_line="x \"y\"",
                     timeout=10.0, due=float(n)) for n in range(3)]
    body = pull_reply([j.model_dump_json() for j in jobs])
    assert PullReply.model_validate_json(body) == PullReply(jobs=jobs)


def test_journal_lines_are_journal_puts_and_dones() -> None:
    line = put_line("k\u00e9y \"1\"", {"result": {"a": [1, 2.5, None]}})
    assert JournalPut.model_validate_json(line) == JournalPut(
        put="k\u00e9y \"1\"", item={"result": {"a": [1, 2.5, None]}})
    assert JournalDone.model_validate_json(done_line("k\u00e9y")) == JournalDone(
        done="k\u00e9y")


def test_receiver_queue_items_are_queued_results_and_commands() -> None:
    result = check_result(passive=True)
    command = ExternalCommand(command_id="c-1", name="ACKNOWLEDGE_SVC_PROBLEM", host="h",
                              service="s", args=["1", "alice", "on it"], entry_time=5.0)
    assert QueuedResult.model_validate(queue_item(result)).result == result
    assert QueuedCommand.model_validate(queue_item(command)).command == command
    # receiver/daemon.py puts {"result": …model_dump(mode="json")} itself: the same item.
    assert queue_item(result) == {"result": result.model_dump(mode="json")}
    assert queue_item(command) == {"command": command.model_dump(mode="json")}


def test_dead_letter_lines_are_dead_letters(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "deadletter.jsonl", "receiver-1")
    poison = {"result": {"host": "", "return_code": 9, "odd": float("nan")}}
    dead.add("k1", poison, "invalid in the queue: result.host", 12.5)
    dead.add("k2", queue_item(check_result()), "refused by scheduler s", 13.0)
    first, second = (DeadLetter.model_validate_json(line) for line in
                     (tmp_path / "deadletter.jsonl").read_text().splitlines())
    assert (first.id, first.time, first.reason) == ("k1", 12.5,
                                                   "invalid in the queue: result.host")
    assert first.item == {"result": {"host": "", "return_code": 9, "odd": None}}
    assert QueuedResult.model_validate(second.item).result == check_result()


# --- the CLI's bodies and answers ----------------------------------------------------------


def test_ctl_bodies_are_the_receivers_models() -> None:
    result = ctl.body(PassiveResult, "send-result", host="web", service="", return_code=2,
                      output="down")
    sent = PassiveBatch(results=[result]).model_dump_json()
    assert PassiveBatch.model_validate_json(sent).results[0].return_code == 2
    with pytest.raises(ctl.CtlError, match="send-result: host: String should have at least"):
        ctl.body(PassiveResult, "send-result", host="", return_code=0)
    with pytest.raises(ctl.CtlError, match="command: commands: List should have at least"):
        ctl.body(CommandLines, "command", commands=[])


def test_ctl_status_prints_the_cluster_view(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = DaemonView(name="scheduler-1", role="scheduler", address="127.0.0.1", port=7768,
                        host_name="h", spare=False, alive=True, attempts=0, last_contact=None,
                        epoch=3, config_hash="c", holds="part scheduler-1", degraded="slow")
    nodes = [NodeStatus(node="db1:3306", reachable=True, read_only=False, db_epoch=4,
                        gtid_current_pos="0-1-9"),
             NodeStatus(node="db2:3306", reachable=True, read_only=True, is_replica=True,
                        io_state="Yes", sql_running=True, seconds_behind=0),
             NodeStatus(node="db3:3306", error="refused")]
    view = ClusterView(arbiter="arbiter-1", epoch=3, config_hash="c", leading=True,
                       daemons=[daemon], unplaced_hosts=0, unowned_checks=0,
                       problems=["one"], database=DatabaseView(
                           topology=DatabaseTopology(epoch=4, primary="db1:3306",
                                                     replicas=["db2:3306"]), nodes=nodes))
    # What the arbiter sends, read back as the CLI reads it.
    ctl.print_view(ClusterView.model_validate_json(view.model_dump_json()))
    out = capsys.readouterr().out
    assert "arbiter arbiter-1  epoch 3  config c  leading" in out
    assert "scheduler  scheduler-1" in out and "part scheduler-1  slow" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["db1:3306"][1:4] == ["primary", "yes", "no"]
    assert rows["db2:3306"][1:7] == ["replica", "yes", "yes", "-", "0s", "Yes/Yes"]
    assert rows["db3:3306"][1:3] == ["-", "NO"] and "refused" in rows["db3:3306"]
    assert "problem: one" in out


# --- large models in slices (shinha/wirejson.py) -----------------------------------------


def large_models() -> list[BaseModel]:
    n = SLICE * 2 + 7  # sliced, with a remainder
    results = [check_result(i) for i in range(n)]
    states = [StateRow(host=f"h{i}", service="s", perfdata=[PerfDatum(label="x", value=i)],
                       downtimes=[Downtime(downtime_id=f"d{i}", host=f"h{i}", start=1.0,
                                           end=2.0)]) for i in range(n)]
    events = [Event(event_id=f"e{i}", time=float(i), host="h", kind="state", state=None)
              for i in range(n)]
    history: list[ResultEntry | EventEntry] = [
        EventEntry(**e.model_dump()) if i % 2 else ResultEntry(
            result_id=f"r{i}", time=1.0, last_seen=2.0, hits=1, state=0, output="",
            long_output="", perfdata=[], started=0.0, latency=0.0, timed_out=False,
            passive=False, poller="") for i, e in enumerate(events)]
    status = StatusReply(**STATUS, role="scheduler", owns=scheduler_owns())
    return [IngestBatch(scheduler="s", epoch=2, results=results, states=states, events=events),
            ResultBatch(poller="p", results=results), StateAnswer(states=states),
            HistoryPage(total=n, offset=0, limit=n, items=history), status,
            StatusReply(**STATUS, role="scheduler", owns=scheduler_owns(latency_p50=0.1))]


@pytest.mark.parametrize("model", large_models(), ids=lambda m: type(m).__name__)
def test_slices_join_into_the_models_json(model: BaseModel) -> None:
    body = json_bytes(model)
    assert body == model.model_dump_json().encode()
    assert json.loads(body) == json.loads(model.model_dump_json())
    assert type(model).model_validate_json(body) == model
