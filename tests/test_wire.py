"""Shapes on the wire: each role's /status `owns` is its own model, and every JSON body built
by hand (for speed) parses as the model it stands for, so that renaming a field of the model
breaks a test here rather than a peer in production."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shinha.wire import (
    OWNS_BY_ROLE,
    ROLES,
    ArbiterOwns,
    ElectionView,
    PollerOwns,
    ReceiverOwns,
    SchedulerOwns,
    StatusReply,
)

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
