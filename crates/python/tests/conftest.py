"""Fixtures for the pitcrew package's tests: the real binaries of the suite, each test
group in a namespace, ipc sockets and ports of its own (as tests/src/lib.rs does for the
Rust end-to-end tests), so the tests run beside the others and leave nothing behind.

The binaries come from $PITCREW_BIN_DIR, else $CARGO_TARGET_DIR/debug, else target/debug
(scripts/test builds them first).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import msgpack
import pytest

import pitcrew

ROOT = Path(__file__).resolve().parents[3]
BIN_DIR = Path(
    os.environ.get("PITCREW_BIN_DIR")
    or Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug"
)
# Generous, as in the Rust tests: the machine is small and shared.
PATIENCE = 15.0
_counter = itertools.count()


def koala_uid(serial: int) -> str:
    """A koala-bear (device id 13) UID, in decimal."""
    return str((13 << 72) | serial)


def limit_switch_uid(serial: int) -> str:
    """A limit-switch (device id 0) UID."""
    return str(serial)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(what: str, check: Callable[[], object], patience: float = PATIENCE):
    """Polls ``check`` until it returns something truthy; fails naming ``what``."""
    deadline = time.monotonic() + patience
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} (last: {got!r})")
        time.sleep(0.02)


class Suite:
    """Binaries of the suite started in one namespace; stopped and cleaned on close."""

    def __init__(self, tag: str, env: Optional[dict[str, str]] = None) -> None:
        self.ns = f"py{os.getpid()}-{next(_counter)}-{tag}"[:32]
        self.procs: list[subprocess.Popen] = []
        self.client = pitcrew.Client(namespace=self.ns)
        #: The environment every process of the suite gets (``env`` over this one's).
        self.env = {**os.environ, **(env or {})}

    def env_vars(self) -> dict[str, str]:
        """``self.env`` with this suite's endpoints as the ``PITCREW_*`` variables a
        Python program (team code, a tool) reads, as the supervisor hands them over."""
        ns = self.ns
        return {
            **self.env,
            "PITCREW_NAMESPACE": ns,
            "PITCREW_ROUTER_FRONTEND": f"ipc:///tmp/{ns}-rpc.sock",
            "PITCREW_ROUTER_BACKEND": f"ipc:///tmp/{ns}-srv.sock",
            "PITCREW_LOG_FRONTEND": f"ipc:///tmp/{ns}-logpub.sock",
            "PITCREW_LOG_BACKEND": f"ipc:///tmp/{ns}-log.sock",
        }

    def args(self) -> list[str]:
        ns = self.ns
        return [
            "--namespace", ns,
            "--router-frontend", f"ipc:///tmp/{ns}-rpc.sock",
            "--router-backend", f"ipc:///tmp/{ns}-srv.sock",
            "--log-frontend", f"ipc:///tmp/{ns}-logpub.sock",
            "--log-backend", f"ipc:///tmp/{ns}-log.sock",
            "--log-format", "json",
        ]

    def spawn(self, binary: str, *extra: str, stdout=subprocess.DEVNULL) -> subprocess.Popen:
        path = BIN_DIR / binary
        if not path.exists():
            pytest.fail(f"{path} is not built; run scripts/test (it builds the binaries)")
        log = open(f"/tmp/{self.ns}-{binary}.log", "ab")
        proc = subprocess.Popen(
            [str(path), *self.args(), *extra],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=log,
            env=self.env,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def wait_for(self, service: str) -> None:
        def answers() -> bool:
            try:
                self.client.call(service, "ping", timeout=0.2)
                return True
            except pitcrew.RemoteError:
                return False

        eventually(f"{service} to answer", answers)

    def router(self) -> None:
        self.spawn("pitcrew-router")
        self.wait_for("router")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        subprocess.run(
            [str(BIN_DIR / "pitcrew"), *self.args(), "clean", "--force"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        for path in Path("/tmp").glob(f"{self.ns}-*"):
            if path.suffix != ".log":
                path.unlink(missing_ok=True)


class Emulator:
    """A ``pitcrew emulate`` process whose JSON event lines are collected."""

    def __init__(self, suite: Suite, port: int, *devices: str) -> None:
        self.proc = suite.spawn(
            "pitcrew", "emulate", *devices, "--tcp", f"tcp://127.0.0.1:{port}",
            stdout=subprocess.PIPE,
        )
        self.events: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def seen(self, uid: str, name: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("uid") == uid and e.get("event") == name]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Station:
    """A driver station: control datagrams (spec/wire.md, with the ``ds`` requests) to a
    gamepad receiver at 50 Hz from a thread of its own, until stopped."""

    def __init__(self, port: int, source: str = "pytest-station") -> None:
        self.port, self.source = port, source
        self.enable, self.enable_id, self.seq = False, 0, 0
        self.mode = "teleop"
        #: The left stick's y axis the station sends.
        self.ly = 0.0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        threading.Thread(target=self._run, daemon=True).start()

    def _datagram(self) -> bytes:
        self.seq += 1
        pad = {"lx": 0.0, "ly": self.ly, "rx": 0.0, "ry": 0.0, "btn": 0}
        ds = {"v": 1, "mode": self.mode, "enable": self.enable,
              "enable_id": self.enable_id, "estop": False}
        meta = {"seq": self.seq, "sent_us": 0, "source": self.source, "ds": ds}
        return msgpack.packb([2, "update_gamepads", [{"0": pad}, meta]])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sock.sendto(self._datagram(), ("127.0.0.1", self.port))
            time.sleep(0.02)

    def press_enable(self) -> None:
        self.enable_id += 1
        self.enable = True

    def disable(self) -> None:
        self.enable = False

    def stop(self) -> None:
        self._stop.set()


class Devices(Suite):
    """A router, a device broker on a free TCP port, emulated devices on it, and the robot
    enabled in teleop by a driver station through a gamepad receiver (output leases off
    unless ``output_lease`` says otherwise: these tests write a value once and read it
    back)."""

    def __init__(
        self,
        tag: str,
        *devices: str,
        robot_file: Optional[Path] = None,
        output_lease: str = "0",
        env: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(tag, env)
        self.output_lease = output_lease
        try:
            self._start(devices, robot_file)
        except BaseException:
            self.close()
            raise

    def _start(self, devices: tuple[str, ...], robot_file: Optional[Path]) -> None:
        self.router()
        port = free_port()
        self.spawn(
            "pitcrew-devices",
            "--virtual-addr", f"tcp://127.0.0.1:{port}",
            "--update-addr", f"udp://239.255.77.1:{free_port(socket.SOCK_DGRAM)}",
            "--update-interface", "127.0.0.1",
            "--serial-glob", "",
            "--output-lease", self.output_lease,
        )
        self.wait_for("device-service")
        control = free_port(socket.SOCK_DGRAM)
        self.spawn("pitcrew-gamepad", "receive", "--control-addr", f"udp://127.0.0.1:{control}")
        self.station = Station(control)
        self.enable()
        self.emulator = Emulator(self, port, *devices)
        self.robot = pitcrew.Robot(namespace=self.ns, robot_file=robot_file)

    def robot_state(self) -> str:
        try:
            return self.client.call("robot-service", "state", timeout=1.0)["state"]
        except pitcrew.RemoteError:
            return "unreachable"

    def enable(self, mode: str = "teleop") -> None:
        """Presses enable until the robot is in ``mode`` (the broker takes a station's
        first request as its baseline, rule 4 of spec/robot-state.md)."""
        self.station.mode = mode
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            self.station.press_enable()
            for _ in range(10):
                time.sleep(0.05)
                if self.robot_state() == mode:
                    return
        pytest.fail(f"the robot never enabled: {self.robot_state()}")

    def disable(self) -> None:
        """Releases enable until the robot is disabled."""
        self.station.disable()
        eventually("the robot to disable", lambda: self.robot_state() == "disabled")

    def close(self) -> None:
        station = getattr(self, "station", None)
        if station is not None:
            station.stop()
        super().close()

    def wait_connected(self, uid: str) -> None:
        def connected() -> bool:
            return any(d["uid"] == uid and d["connected"] for d in self.robot.devices())

        eventually(f"{uid} to connect", connected)
        eventually(f"{uid} to be subscribed", lambda: self.emulator.seen(uid, "subscribe"))


@pytest.fixture
def suite_factory():
    """Makes suites that are closed when the test ends."""
    made: list[Suite] = []

    def make(cls=Suite, *args, **kwargs):
        s = cls(*args, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
