"""`pitcrew run`, the executor of a team's Python code, against the real suite: a router,
log forwarder, device broker (100 ms output lease), gamepad receiver, an emulated
koala-bear and a driver station that enables and disables the robot."""

from __future__ import annotations

import signal
import socket
import sys
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import BIN_DIR, Devices, Emulator, Suite, eventually, free_port, koala_uid

KOALA = koala_uid(4242)


@pytest.fixture(scope="module")
def suite():
    s = Devices("run", f"koala-bear:{KOALA}", output_lease="100ms")
    try:
        s.spawn("pitcrew-logfwd")
        s.wait_for("logfwd-service")
        s.wait_connected(KOALA)
        s.disable()
        yield s
    finally:
        s.close()


class Run:
    """A `pitcrew run` of a code file; each call of the student's functions appends its
    name to ``calls``."""

    def __init__(
        self, suite: Devices, tmp: Path, stem: str, body: str, period: str = "20ms"
    ) -> None:
        self.suite, self.stem = suite, stem
        self.code = tmp / f"{stem}.py"
        self.calls = tmp / f"{stem}.calls"
        self.write(body)
        self.proc = suite.spawn(
            "pitcrew", "run", str(self.code), "--period", period, "--timeout", "1s"
        )

    def write(self, body: str) -> None:
        header = f"CALLS = {str(self.calls)!r}\n" + textwrap.dedent(
            """
            def record(name):
                with open(CALLS, "a") as f:
                    f.write(name + "\\n")
            """
        )
        self.code.write_text(header + textwrap.dedent(body))

    def lines(self) -> list[str]:
        try:
            return self.calls.read_text().split()
        except FileNotFoundError:
            return []

    def count(self, name: str) -> int:
        return self.lines().count(name)

    def logs(self, contains: str = "") -> list[dict]:
        got = self.suite.client.call(
            "logfwd-service", "recent_logs", 200, "debug", f"run-{self.stem}"
        )
        return [r for r in got if contains in r.get("event", "")]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(5) == 0


def lines_of(code: Path, text: str) -> int:
    """The 1-based line of ``code`` containing ``text``."""
    for n, line in enumerate(code.read_text().splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {code}")


COUNTING = """
def autonomous_setup():
    record("autonomous_setup")

def autonomous_main():
    record("autonomous_main")

def teleop_setup():
    record("teleop_setup")

def teleop_main():
    record("teleop_main")
    Robot.set_value(KOALA, "duty_cycle_a", 0.25)
"""


def test_setup_once_and_main_every_period_per_mode(suite: Devices, tmp_path: Path):
    run = Run(suite, tmp_path, "counting", f"KOALA = {KOALA!r}\n" + COUNTING)
    try:
        time.sleep(0.5)
        assert run.lines() == [], "nothing is called while disabled"
        suite.enable("teleop")
        eventually("teleop_main", lambda: run.count("teleop_main") >= 1)
        start = run.count("teleop_main")
        time.sleep(1.0)
        per_second = run.count("teleop_main") - start
        assert 30 <= per_second <= 55, per_second  # 50 at 20 ms, on a busy machine
        assert run.count("teleop_setup") == 1
        assert run.lines()[0] == "teleop_setup"
        eventually(
            "the teleop write",
            lambda: [e for e in suite.emulator.seen(KOALA, "write")
                     if e["values"].get("duty_cycle_a") == 0.25],
        )
        suite.enable("autonomous")
        eventually("autonomous_main", lambda: run.count("autonomous_main") >= 10)
        assert run.count("autonomous_setup") == 1
        suite.disable()
        time.sleep(0.1)
        stopped = len(run.lines())
        time.sleep(0.3)
        assert len(run.lines()) == stopped, "nothing is called once disabled"
    finally:
        run.stop()


def test_an_exception_is_logged_with_its_line_and_its_writes_are_not_sent(
    suite: Devices, tmp_path: Path
):
    run = Run(suite, tmp_path, "raising", f"""
        KOALA = {KOALA!r}
        def teleop_main():
            record("teleop_main")
            Robot.set_value(KOALA, "duty_cycle_b", 0.75)
            1 / 0
        """)
    try:
        suite.enable("teleop")
        record = eventually("the error record", lambda: run.logs("teleop_main failed"))[-1]
        line = lines_of(run.code, "1 / 0")
        assert record["level"] == "error"
        assert record["file"] == str(run.code) and record["line"] == line
        assert f"raising.py:{line}" in record["event"] and "ZeroDivisionError" in record["event"]
        assert "ZeroDivisionError" in record["exception"]
        time.sleep(0.5)
        assert run.count("teleop_main") == 1, "the loop stops until the next enable"
        assert not [e for e in suite.emulator.seen(KOALA, "write")
                    if e["values"].get("duty_cycle_b") == 0.75], "a raising main writes nothing"
        assert run.proc.poll() is None
        suite.disable()
        suite.enable("teleop")
        eventually("a main after the next enable", lambda: run.count("teleop_main") == 2)
        suite.disable()
    finally:
        run.stop()


def test_a_worker_that_exits_is_one_log_line_not_a_restart_loop(suite: Devices, tmp_path: Path):
    run = Run(suite, tmp_path, "exiting", """
        import os
        def teleop_main():
            record("teleop_main")
            os._exit(3)
        """)
    try:
        suite.enable("teleop")
        eventually("the log line", lambda: run.logs("the worker"))
        time.sleep(0.5)
        assert len(run.logs("the worker")) == 1 and run.count("teleop_main") == 1
        suite.disable()
        suite.enable("teleop")
        eventually("a new worker at the next enable", lambda: run.count("teleop_main") == 2)
        suite.disable()
    finally:
        run.stop()


def test_a_hung_main_is_killed_its_motors_safe_and_the_worker_restarted(
    suite: Devices, tmp_path: Path
):
    hang = tmp_path / "hang"
    hang.touch()
    run = Run(suite, tmp_path, "hanging", f"""
        import os
        KOALA = {KOALA!r}
        def teleop_setup():
            record("teleop_setup")
        def teleop_main():
            record("teleop_main")
            Robot.set_value(KOALA, "duty_cycle_a", 0.5)
            if os.path.exists({str(hang)!r}) and len(open(CALLS).read().split()) > 10:
                while True:
                    pass
        """)
    earlier = len(suite.emulator.seen(KOALA, "write"))  # earlier tests' safe values too
    try:
        suite.enable("teleop")
        eventually("the drive write", lambda: [
            e for e in suite.emulator.seen(KOALA, "write")
            if e["values"].get("duty_cycle_a") == 0.5])
        hung_at = eventually("the hang", lambda: run.count("teleop_main") > 9 and time.monotonic())
        eventually("the safe value", lambda: [
            e for e in suite.emulator.seen(KOALA, "write")[earlier:]
            if e["values"].get("duty_cycle_a") == 0.0], patience=3.0)
        assert time.monotonic() - hung_at < 1.0, "safe within the lease, before the timeout"
        eventually("the kill", lambda: run.logs("took longer than 1s: killed the worker"))
        hang.unlink()
        before = run.count("teleop_main")
        eventually("mains in the new worker", lambda: run.count("teleop_main") > before + 5)
        assert run.count("teleop_setup") >= 2, "the new worker runs the setup again"
        suite.disable()
    finally:
        run.stop()


def test_a_syntax_error_is_one_line_and_an_edit_is_loaded_at_the_next_enable(
    suite: Devices, tmp_path: Path
):
    run = Run(suite, tmp_path, "broken", """
        def teleop_main(:
            record("teleop_main")
        """)
    try:
        suite.enable("teleop")
        record = eventually("the syntax error", lambda: run.logs("syntax error"))[-1]
        assert f"broken.py:{lines_of(run.code, 'def teleop_main(:')}" in record["event"]
        time.sleep(1.0)
        assert len(run.logs("syntax error")) == 1, "no crash loop"
        assert run.proc.poll() is None
        run.write("""
            def teleop_main():
                record("v2")
            """)
        time.sleep(0.3)
        assert run.lines() == [], "the edit waits for the next enable"
        suite.disable()
        suite.enable("teleop")
        eventually("the edited code", lambda: run.count("v2") >= 3)
        run.write("""
            def teleop_main():
                record("v3")
            """)
        time.sleep(0.3)
        assert run.count("v3") == 0, "still v2 during this enable"
        suite.disable()
        suite.enable("teleop")
        eventually("the second edit", lambda: run.count("v3") >= 3)
        suite.disable()
    finally:
        run.stop()


def test_bad_options_are_one_line_and_exit_2(tmp_path: Path):
    code = tmp_path / "ok.py"
    code.write_text("")
    for runner in ([str(BIN_DIR / "pitcrew"), "run"], [sys.executable, "-m", "pitcrew.run"]):
        for bad in (["--period", "0s"], ["--timeout", "soon"]):
            out = subprocess.run([*runner, str(code), *bad], capture_output=True, text=True)
            assert out.returncode == 2, (runner, bad, out)
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert bad[0] in out.stderr, out.stderr


def test_teleop_main_runs_at_a_gamepad_change_before_the_period(suite: Devices, tmp_path: Path):
    run = Run(suite, tmp_path, "onchange", f"""
        KOALA = {KOALA!r}

        def teleop_main():
            record("teleop_main")
            Robot.set_value(KOALA, "duty_cycle_a", Gamepad.get_value("joystick_left_y"))
        """, period="5s")
    try:
        suite.enable("teleop")
        eventually("the first teleop_main", lambda: run.count("teleop_main") >= 1)
        time.sleep(0.3)  # the station repeats the same input at 50 Hz: no change, no call
        before = run.count("teleop_main")
        assert before <= 2, run.lines()
        suite.station.ly = 0.5
        started = time.monotonic()
        eventually("teleop_main at the change", lambda: run.count("teleop_main") > before)
        # Generous (the wake takes microseconds), far below the 5 s period.
        assert time.monotonic() - started < 2.5
        eventually(
            "the stick on the motor",
            lambda: [e for e in suite.emulator.seen(KOALA, "write")
                     if e["values"].get("duty_cycle_a") == 0.5],
        )
    finally:
        suite.station.ly = 0.0
        suite.disable()
        run.stop()


# Team code that starts helpers, each driving the motor on its own: one plain child, one
# in a session of its own, one detached by a double fork (as daemons do). Each appends its
# pid to PIDS.
HELPER = """
import os, sys, time
import pitcrew
if sys.argv[1] == "detach":
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
with open(sys.argv[2], "a") as f:
    f.write(f"{os.getpid()}\\n")
robot = pitcrew.Robot()
while True:
    robot.set_value(sys.argv[3], "duty_cycle_a", 0.75)
    time.sleep(0.02)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has stopped: it can drive nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


def test_processes_team_code_starts_end_with_its_worker(suite: Devices, tmp_path: Path):
    hang = tmp_path / "hang"
    pids = tmp_path / "pids"
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER)
    run = Run(suite, tmp_path, "spawner", f"""
        import os, subprocess, sys
        KOALA = {KOALA!r}
        def teleop_setup():
            record("teleop_setup")
            if not os.path.exists({str(pids)!r}):
                for how in ("plain", "session", "detach"):
                    subprocess.Popen([sys.executable, {str(helper)!r}, how, {str(pids)!r}, KOALA],
                                     start_new_session=how == "session")
        def teleop_main():
            record("teleop_main")
            if os.path.exists({str(hang)!r}) and len(open(CALLS).read().split()) > 20:
                while True:
                    pass
        """)
    hang.touch()
    try:
        suite.enable("teleop")
        helpers = eventually("three helpers", lambda: (
            pids.exists() and len(pids.read_text().split()) == 3 and pids.read_text().split()))
        helpers = [int(p) for p in helpers]
        seen = len(suite.emulator.seen(KOALA, "write"))
        eventually("the helpers drive", lambda: [
            e for e in suite.emulator.seen(KOALA, "write")[seen:]
            if e["values"].get("duty_cycle_a") == 0.75])
        # The main hangs: the worker is killed for the timeout, and its helpers with it.
        eventually("the kill", lambda: run.logs("took longer than 1s: killed the worker"))
        eventually("the helpers to end", lambda: not any(alive(p) for p in helpers), patience=5.0)
        hang.unlink()
        eventually("mains in the new worker", lambda: run.count("teleop_setup") >= 2)
        suite.disable()
    finally:
        hang.unlink(missing_ok=True)
        run.stop()
    assert not any(alive(p) for p in helpers)
    # With nothing of the team code left, a new enable drives nothing at 0.75.
    suite.enable("teleop")
    seen = len(suite.emulator.seen(KOALA, "write"))
    time.sleep(0.5)
    late = [e for e in suite.emulator.seen(KOALA, "write")[seen:]
            if e["values"].get("duty_cycle_a") == 0.75]
    suite.disable()
    assert late == [], late


def test_processes_team_code_starts_end_when_pitcrew_run_stops(suite: Devices, tmp_path: Path):
    pids = tmp_path / "pids"
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER)
    run = Run(suite, tmp_path, "spawnstop", f"""
        import subprocess, sys
        KOALA = {KOALA!r}
        def teleop_setup():
            for how in ("plain", "session", "detach"):
                subprocess.Popen([sys.executable, {str(helper)!r}, how, {str(pids)!r}, KOALA],
                                 start_new_session=how == "session")
        """)
    try:
        suite.enable("teleop")
        helpers = eventually("three helpers", lambda: (
            pids.exists() and len(pids.read_text().split()) == 3 and pids.read_text().split()))
        suite.disable()
    finally:
        run.stop()
    assert not any(alive(int(p)) for p in helpers), "pitcrew run stopped: nothing it ran lives"


def test_team_code_runs_on_a_robot_with_a_team_key(suite_factory, tmp_path: Path):
    """As deployed: every process with the team key, the real sender sealing its
    datagrams, `pitcrew run` driving a motor."""
    key = tmp_path / "team.key"
    subprocess.run([str(BIN_DIR / "pitcrew"), "key", "new", str(key)], check=True,
                   capture_output=True)
    uid = koala_uid(4343)
    keyed = suite_factory(Suite, "key", env={"PITCREW_KEY_FILE": str(key)})
    keyed.router()
    keyed.spawn("pitcrew-logfwd")
    keyed.wait_for("logfwd-service")
    port = free_port()
    keyed.spawn("pitcrew-devices", "--virtual-addr", f"tcp://127.0.0.1:{port}",
                "--update-addr", f"udp://239.255.77.1:{free_port(socket.SOCK_DGRAM)}",
                "--update-interface", "127.0.0.1", "--serial-glob", "", "--output-lease", "100ms")
    keyed.wait_for("device-service")
    emulator = Emulator(keyed, port, f"koala-bear:{uid}")
    # Every native object a program makes, several of each, in one process.
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import logging, pitcrew
        robots = [pitcrew.Robot(), pitcrew.Robot()]
        client = pitcrew.Client()
        client.call("router", "ping")
        pitcrew.log_to_forwarder(app="keyed")
        logging.getLogger("keyed").warning("hello")
        pitcrew.Robot()
        print("ok")
        """)], env=keyed.env_vars(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out
    # `pitcrew run` with the key, as the systemd unit runs it, and a sealed station.
    run = Run(keyed, tmp_path, "keyed", f"""
        def teleop_main():
            Robot.set_value({uid!r}, "duty_cycle_a", 0.25)
        """)
    try:
        control = free_port(socket.SOCK_DGRAM)
        keyed.spawn("pitcrew-gamepad", "receive", "--control-addr", f"udp://127.0.0.1:{control}")
        keyed.spawn("pitcrew-gamepad", "send", "--to", f"127.0.0.1:{control}", "--neutral",
                    "--enable", "--no-keys", "--source", "keyed-station")
        eventually("team code driving", lambda: [
            e for e in emulator.seen(uid, "write")
            if e["values"].get("duty_cycle_a") == 0.25])
        assert run.proc.poll() is None
    finally:
        run.stop()
