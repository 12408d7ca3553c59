"""Gamepad: named inputs from the receiver's buffer, neutral whenever the link is gone."""

from __future__ import annotations

import socket
import threading

import msgpack
import pytest

import pitcrew
from conftest import Suite, eventually

NEUTRAL = {"joystick_left_x": 0.0, "joystick_left_y": 0.0, "button_a": False, "dpad_up": False}


def reading(pad: pitcrew.Gamepad) -> dict:
    return {name: pad.get_value(name) for name in NEUTRAL}


def test_no_receiver_reads_neutral():
    pad = pitcrew.Gamepad(0, namespace="py-no-receiver")
    assert not pad.connected
    assert reading(pad) == NEUTRAL
    with pytest.raises(pitcrew.UnknownParamError, match="a gamepad has no input joystick_y"):
        pad.get_value("joystick_y")


def test_a_live_link_reads_and_a_lost_link_reads_neutral(suite_factory):
    suite: Suite = suite_factory(Suite, "pad")
    suite.router()
    suite.spawn("pitcrew-gamepad", "receive", "--control-addr", "udp://127.0.0.1:0")
    suite.wait_for("gamepad-service")
    host, port = suite.client.call("gamepad-service", "status")["addr"].rsplit(":", 1)
    pad = pitcrew.Gamepad(0, namespace=suite.ns)

    stop = threading.Event()

    def drive() -> None:
        seq = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                seq += 1
                pads = {"0": {"lx": 0.0, "ly": 0.5, "rx": 0.0, "ry": 0.0, "btn": 1}}
                meta = {"seq": seq, "sent_us": seq * 10_000, "source": "pytest"}
                s.sendto(msgpack.packb([2, "update_gamepads", [pads, meta]]), (host, int(port)))
                stop.wait(0.01)

    sender = threading.Thread(target=drive, daemon=True)
    sender.start()
    try:
        eventually("the gamepad to connect", lambda: pad.connected)
        assert pad.get_value("joystick_left_y") == 0.5
        assert pad.get_value("button_a") is True
        assert pad.get_value("button_b") is False
    finally:
        stop.set()
        sender.join()
    # The control watchdog trips after 100 ms without datagrams: neutral, disconnected.
    eventually("the gamepad to read neutral", lambda: not pad.connected)
    assert reading(pad) == NEUTRAL


def send_pad(addr: tuple, seq: int, ly: float) -> None:
    pads = {"0": {"lx": 0.0, "ly": ly, "rx": 0.0, "ry": 0.0, "btn": 0}}
    meta = {"seq": seq, "sent_us": seq * 10_000, "source": "pytest"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msgpack.packb([2, "update_gamepads", [pads, meta]]), addr)


def test_wait_for_change_wakes_on_new_input_and_times_out_without(suite_factory):
    import time

    pad = pitcrew.Gamepad(0, namespace="py-no-receiver-wait")
    with pytest.raises(pitcrew.InvalidValueError, match="from 0 to 3600, got -1"):
        pad.wait_for_change(-1)
    started = time.monotonic()
    assert pad.wait_for_change(0.1) is False  # no receiver: nothing changes
    assert time.monotonic() - started >= 0.09

    suite: Suite = suite_factory(Suite, "padwait")
    suite.router()
    suite.spawn("pitcrew-gamepad", "receive", "--control-addr", "udp://127.0.0.1:0")
    suite.wait_for("gamepad-service")
    host, port = suite.client.call("gamepad-service", "status")["addr"].rsplit(":", 1)
    addr = (host, int(port))
    pad = pitcrew.Gamepad(0, namespace=suite.ns)
    send_pad(addr, 1, 0.25)
    eventually("the gamepad to connect", lambda: pad.connected)
    # One datagram: the watchdog disconnects it 100 ms later; then nothing changes.
    eventually("the gamepad to disconnect", lambda: not pad.connected)
    while pad.wait_for_change(0.2):
        pass
    stop = threading.Event()

    def drive() -> None:
        seq = 2
        while not stop.wait(0.01 if seq > 2 else 0.3):
            seq += 1
            send_pad(addr, seq, 0.75)

    sender = threading.Thread(target=drive, daemon=True)
    sender.start()
    started = time.monotonic()
    try:
        # Generous bound (the wake itself takes microseconds): it returns on the first
        # datagram 0.3 s from now, not at the 5 s timeout.
        assert pad.wait_for_change(5.0) is True
        assert 0.2 < time.monotonic() - started < 2.5
        eventually("the new input", lambda: pad.get_value("joystick_left_y") == 0.75)
    finally:
        stop.set()
        sender.join()
