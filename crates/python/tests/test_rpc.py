"""call / notify / Client through the real router, against pitcrew-testsvc."""

from __future__ import annotations

import time

import pytest

import pitcrew
from conftest import Suite


@pytest.fixture(scope="module")
def suite():
    s = Suite("rpc")
    try:
        s.router()
        s.spawn("pitcrew-testsvc", "--app", "py")
        s.wait_for("py-service")
        yield s
    finally:
        s.close()


def test_results_round_trip_python_values(suite):
    c = suite.client
    assert c.call("py-service", "add", 2, 40) == 42
    value = {"a": [1, -2, 2**63, 0.5, None, True, "é"], "b": b"\x00\x01", "c": {"nested": (1, 2)}}
    assert c.call("py-service", "echo", value) == {
        "a": [1, -2, 2**63, 0.5, None, True, "é"],
        "b": b"\x00\x01",
        "c": {"nested": [1, 2]},
    }
    assert c.call("router", "ping") == "pong"
    peers = [p["identity"] for p in c.call("router", "list_peers")]
    assert c.identity in peers and "py-service" in peers


def test_module_functions_use_the_environment(suite, monkeypatch):
    monkeypatch.setenv("PITCREW_NAMESPACE", suite.ns)
    # The default client is made on first use, so only this test uses it.
    assert pitcrew.call("py-service", "add", 1, 2) == 3
    pitcrew.notify("py-service", "echo", "ignored")
    with pytest.raises(pitcrew.RemoteError) as e:
        pitcrew.call("py-service", "fail", "no battery")
    assert (e.value.code, e.value.message) == ("handler_failed", "no battery")


def test_remote_errors_carry_code_and_message(suite):
    c = suite.client
    with pytest.raises(pitcrew.RemoteError) as e:
        c.call("py-service", "fail", "no battery")
    assert (e.value.code, e.value.message) == ("handler_failed", "no battery")
    assert str(e.value) == "handler_failed: no battery"
    assert isinstance(e.value.context, dict)
    with pytest.raises(pitcrew.RemoteError) as e:
        c.call("py-service", "no_such", 1)
    assert e.value.code == "no_such_method"
    with pytest.raises(pitcrew.RemoteError) as e:
        c.call("py-service", "add", "two", 2)
    assert e.value.code == "invalid_params"
    with pytest.raises(pitcrew.RemoteError) as e:
        c.call("ghost-service", "ping")
    assert e.value.code == "unreachable"
    assert not isinstance(e.value, TimeoutError)


def test_a_slow_answer_times_out(suite):
    c = suite.client
    started = time.monotonic()
    with pytest.raises(pitcrew.RpcTimeoutError) as e:
        c.call("py-service", "sleep", 2.0, timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.5, elapsed
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, pitcrew.RemoteError)
    assert e.value.code == "timeout"
    assert e.value.context == {"service": "py-service", "method": "sleep"}
    # The late answer is dropped; the client goes on.
    assert c.call("py-service", "sleep", 0.01) == 0.01
    short = pitcrew.Client(namespace=suite.ns, timeout=0.1)
    with pytest.raises(TimeoutError):
        short.call("py-service", "sleep", 1.0)


def test_values_that_cannot_travel_are_refused_before_sending(suite):
    c = suite.client
    with pytest.raises(TypeError, match="cannot send a set over RPC"):
        c.call("py-service", "echo", {1, 2})
    with pytest.raises(OverflowError):
        c.call("py-service", "echo", 2**64)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nest at most"):
        c.call("py-service", "echo", loop)
    with pytest.raises(ValueError, match="timeout must be a positive"):
        c.call("py-service", "echo", 1, timeout=0)
