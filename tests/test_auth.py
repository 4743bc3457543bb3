"""The secret checks compare in constant time: the cluster secret of state-changing requests
(check_secret) and the proof an arbiter's `/ping` carries (Nonces.verify)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest
from aiohttp.test_utils import make_mocked_request

from shinha.clock import ManualClock
from shinha.errors import RequestError
from shinha.http.auth import NONCE_LIFETIME, Nonces, ping_proof
from shinha.http.server import check_secret

SECRET = "test-secret-0123456789"

Compare = Callable[[bytes, bytes], bool]


@pytest.fixture
def compares(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every hmac.compare_digest call (both modules look it up on `hmac` at each call)."""
    calls: list[tuple[bytes, bytes]] = []
    real: Compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def _proof(nonce: str, epoch: int = 3) -> str:
    return ping_proof(SECRET, nonce, "arbiter-master", epoch, "poller-1")


def test_ping_proof_is_compared_with_compare_digest(compares: list[tuple[bytes, bytes]]) -> None:
    nonces = Nonces(ManualClock())
    good = _proof(nonces.current())
    assert nonces.verify(SECRET, good, "arbiter-master", 3, "poller-1")
    assert compares and all(given == good.encode() for given, _ in compares)
    compares.clear()
    wrong_last = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert not nonces.verify(SECRET, wrong_last, "arbiter-master", 3, "poller-1")
    assert compares


def test_ping_proof_check_does_the_same_work_whichever_nonce_matches(
        compares: list[tuple[bytes, bytes]]) -> None:
    """No early exit: a proof over the current nonce costs the same comparisons as one over
    the previous nonce, or a wrong one."""
    clock = ManualClock()
    nonces = Nonces(clock)
    previous = nonces.current()
    clock.advance(NONCE_LIFETIME)
    current = nonces.current()
    assert current != previous
    counts = []
    for proof, accepted in ((_proof(current), True), (_proof(previous), True),
                            (_proof("never-handed-out"), False)):
        compares.clear()
        assert nonces.verify(SECRET, proof, "arbiter-master", 3, "poller-1") is accepted
        counts.append(len(compares))
    assert counts == [2, 2, 2]


def test_ping_proof_is_bound_to_the_epoch_the_arbiter_and_the_target() -> None:
    nonces = Nonces(ManualClock())
    good = _proof(nonces.current(), epoch=3)
    assert nonces.verify(SECRET, good, "arbiter-master", 3, "poller-1")
    assert not nonces.verify(SECRET, good, "arbiter-master", 4, "poller-1")
    assert not nonces.verify(SECRET, good, "arbiter-spare", 3, "poller-1")
    assert not nonces.verify(SECRET, good, "arbiter-master", 3, "poller-2")
    assert not nonces.verify("", good, "arbiter-master", 3, "poller-1")
    assert not nonces.verify(SECRET, "", "arbiter-master", 3, "poller-1")
    # A header that is not UTF-8 arrives with surrogate escapes: refused, not an error.
    assert not nonces.verify(SECRET, "\udcff" + good[1:], "arbiter-master", 3, "poller-1")


def test_cluster_secret_is_compared_with_compare_digest(
        compares: list[tuple[bytes, bytes]]) -> None:
    ok = make_mocked_request("POST", "/", headers={"Authorization": f"Bearer {SECRET}"})
    check_secret(ok, SECRET)
    assert compares == [(SECRET.encode(), SECRET.encode())]
    compares.clear()
    bad = make_mocked_request("POST", "/", headers={"Authorization": f"Bearer {SECRET[:-1]}x"})
    with pytest.raises(RequestError) as caught:
        check_secret(bad, SECRET)
    assert caught.value.status == 401
    assert len(compares) == 1
