"""The worker process of ``pitcrew run``: loads a student's code and calls its functions
when the executor (``pitcrew.run``) asks, one request at a time.

Protocol: JSON lines on two pipes whose fds are the arguments. The executor sends
``{"call": "teleop_main"}`` (with ``"wait": SECONDS`` in teleop: call it at the next change of
the gamepad or after that long, whichever is first); the worker answers ``{"ok": true}`` once the function has
returned and its buffered writes are sent, ``{"ok": false, "error": "..."}`` when it
raised (logged here, with the student's file and line), or ``{"ok": true, "missing":
true}`` when the module does not define it. The first answer is for the load itself.

The student's module gets two globals, as in the runtime pitcrew descends from:
``Robot`` (``get_value``, ``set_value``, ``devices``, ``mode``, ``enabled``,
``match_time_left``, ``state``) and ``Gamepad`` (gamepad 0: ``get_value``,
``connected``). ``Robot.set_value`` checks the value at once (an error raises where the
student wrote it) but sends it only when the ``setup``/``main`` call returns, so a call
that hangs or raises halfway writes nothing and the output lease runs out.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import signal
import sys
import traceback
from typing import Any, Optional

import pitcrew

log = logging.getLogger("pitcrew.run")


class StudentRobot:
    """``Robot`` in the student's module: reads go to the buffers at once, writes are
    checked at once and sent when the current ``setup``/``main`` returns."""

    def __init__(self, robot: pitcrew.Robot) -> None:
        self._robot = robot
        self._pending: dict[tuple[str, str], tuple[Any, Any, bool]] = {}

    def get_value(self, device: Any, param: str) -> Any:
        """The param's value now (``pitcrew.Robot.get_value``)."""
        return self._robot.get_value(device, param)

    def set_value(self, device: Any, param: str, value: Any, *, clamp: bool = False) -> None:
        """Checks the write now; sends it when the running function returns (the last
        value written to a param wins)."""
        self._robot.check_value(device, param, value, clamp=clamp)
        self._pending[(str(device), param)] = (device, value, clamp)

    def devices(self) -> list:
        """``pitcrew.Robot.devices``."""
        return self._robot.devices()

    @property
    def mode(self) -> Optional[str]:
        """``"autonomous"``, ``"teleop"`` or ``None`` while disabled."""
        return self._robot.mode

    @property
    def enabled(self) -> bool:
        """Whether the robot is enabled."""
        return self._robot.enabled

    @property
    def match_time_left(self) -> Optional[float]:
        """Seconds left in the match, ``None`` outside one."""
        return self._robot.match_time_left

    def state(self) -> dict:
        """The whole robot state."""
        return self._robot.state()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (_, param), (device, value, clamp) in pending.items():
            self._robot.set_value(device, param, value, clamp=clamp)

    def _discard(self) -> None:
        self._pending = {}


def _student_frame(exc: BaseException, path: str) -> tuple[str, int, str]:
    """The innermost frame of the traceback in the student's file (else the innermost)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno or 0, "<module>"
    mine = [f for f in frames if os.path.abspath(f.filename) == path] or frames
    if not mine:
        return path, 0, "<module>"
    f = mine[-1]
    return f.filename, f.lineno or 0, f.name


def _log_failure(what: str, exc: BaseException, path: str) -> str:
    """Logs ``exc`` with the student's file and line as the record's own; returns the
    one-line summary."""
    file, line, func = _student_frame(exc, path)
    summary = f"{what} failed at {os.path.basename(file)}:{line}: {type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        summary = (
            f"{what}: syntax error at {os.path.basename(file)}:{line}: {exc.msg}"
            " (waiting for the file to change or the next enable)"
        )
    record = log.makeRecord(
        log.name, logging.ERROR, file, line, summary, (), (type(exc), exc, exc.__traceback__), func
    )
    log.handle(record)
    return summary


def main() -> None:
    """Entry point: ``python3 -m pitcrew._worker CODE.py IN_FD OUT_FD APP [ROBOT_FILE]``."""
    try:  # die with the executor, even while stuck in student code (PR_SET_PDEATHSIG)
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    path, in_fd, out_fd, app = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    robot_file = sys.argv[5] if len(sys.argv) > 5 else None
    path = os.path.abspath(path)
    requests = os.fdopen(in_fd, "r")
    answers = os.fdopen(out_fd, "w")
    from .run import log_locally

    log_locally()
    pitcrew.log_to_forwarder(app=app)

    def answer(**fields: Any) -> None:
        answers.write(json.dumps(fields) + "\n")
        answers.flush()

    try:
        robot = StudentRobot(pitcrew.Robot(robot_file=robot_file))
        gamepad = pitcrew.Gamepad(0)
        spec = importlib.util.spec_from_file_location("student_code", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        module.Robot = robot  # type: ignore[attr-defined]
        module.Gamepad = gamepad  # type: ignore[attr-defined]
        sys.modules["student_code"] = module
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of the student's module
        answer(ok=False, error=_log_failure(f"loading {os.path.basename(path)}", exc, path))
        return
    answer(ok=True)
    for line in requests:
        request = json.loads(line)
        name = request["call"]
        if request.get("wait"):
            # Teleop: the call is due at the next gamepad change or after ``wait`` seconds,
            # whichever is first. Waiting here rather than in the executor saves a process
            # wake-up between the stick and the motors.
            gamepad.wait_for_change(float(request["wait"]))
        fn = getattr(module, name, None)
        if fn is None:
            answer(ok=True, missing=True)
            continue
        try:
            fn()
            robot._flush()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - sys.exit() too: logged, not a crash
            robot._discard()
            answer(ok=False, error=_log_failure(name, exc, path))
            continue
        answer(ok=True)


if __name__ == "__main__":
    main()
