"""`pitcrew run`, the executor of a team's Python code, against the real suite: a router,
log forwarder, device broker (100 ms output lease), gamepad receiver, an emulated
koala-bear and a driver station that enables and disables the robot."""

from __future__ import annotations

import signal
import sys
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import BIN_DIR, Devices, eventually, koala_uid

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
