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
