"""``pitcrew.sim``: a team's robot code tested against the simulated robot, in virtual time.

    from pitcrew.sim import Simulation

    sim = Simulation("examples/sim/robot.yaml", "examples/python/drive.py")
    sim.enable("autonomous")
    sim.run(seconds=15)
    assert sim.pose.x > 1.0

The code runs under the rules of ``pitcrew run``: ``<mode>_setup()`` once at an enable,
then ``<mode>_main()`` every ``period`` while enabled; the writes a ``setup``/``main``
makes are checked where they are made and sent when it returns; an output not written for
``lease`` seconds goes to its catalog safe value (the broker's output lease); disabling
drives every output safe and disables the devices; an exception is recorded in
``errors`` (with the code's file and line) and stops that mode's loop until the next
enable. Nothing runs in real time: the physics (``crates/sim``, stepped in Rust at 1 ms)
and the code take turns on one clock, so a 2.5-minute match takes a fraction of a second
and runs the same every time.

The code's own ``time`` is the simulation's: ``time.monotonic()``, ``time.perf_counter()``
and ``time.time()`` (from 2026-01-01 00:00 UTC) follow the simulated clock and
``time.sleep(s)`` lets ``s`` simulated seconds pass (the physics moves on; the writes made
so far still wait for the function to return). Modules the code imports keep the real
clock.

Not simulated: ``pitcrew run``'s ``--timeout`` (a function that never returns hangs the
test, as it would hang the robot's loop), RPC and logging to the forwarder.
"""

from __future__ import annotations

import builtins
import importlib.util
import logging
import math
import os
import time as _real_time
import types
from typing import Any, NamedTuple, Optional, Union

from . import _native
from ._worker import StudentRobot, _log_failure
from .errors import UnknownParamError

__all__ = ["Simulation", "Pose"]

log = logging.getLogger("pitcrew.sim")

#: ``time.time()`` of the code at simulated time 0 (2026-01-01 00:00 UTC): fixed, so that a
#: run does not depend on when it ran.
EPOCH = 1_767_225_600.0
#: Slack when comparing simulated instants (float sums of 1 ms steps).
_EPS = 1e-9
MODES = ("autonomous", "teleop")
BUTTONS = (
    "button_a", "button_b", "button_x", "button_y", "l_bumper", "r_bumper", "l_trigger",
    "r_trigger", "button_back", "button_start", "l_stick", "r_stick", "dpad_up",
    "dpad_down", "dpad_left", "dpad_right", "button_xbox",
)
AXES = ("joystick_left_x", "joystick_left_y", "joystick_right_x", "joystick_right_y")


class Pose(NamedTuple):
    """Where the robot is: metres from the field's corner, radians counter-clockwise."""

    x: float
    y: float
    heading: float


class _SimRobot:
    """What ``StudentRobot`` (the ``Robot`` global of ``pitcrew run``) wraps: the simulated
    devices instead of the shared-memory buffers."""

    def __init__(self, sim: "Simulation") -> None:
        self._sim = sim

    def get_value(self, device: Any, param: str) -> Any:
        return self._sim._world.get_value(device, param)

    def check_value(self, device: Any, param: str, value: Any, *, clamp: bool = False) -> None:
        self._sim._world.check_value(device, param, value, clamp=clamp)

    def set_value(self, device: Any, param: str, value: Any, *, clamp: bool = False) -> None:
        self._sim._world.set_value(device, param, value, clamp=clamp)
        if param in self._sim._outputs.get(str(device), ()):
            self._sim._written[(str(device), param)] = self._sim.time

    def devices(self) -> list:
        return self._sim._world.devices()

    @property
    def mode(self) -> Optional[str]:
        return self._sim._mode

    @property
    def enabled(self) -> bool:
        return self._sim._mode is not None

    @property
    def match_time_left(self) -> Optional[float]:
        end = self._sim._match_end
        return None if end is None else max(0.0, end - self._sim.time)

    def state(self) -> dict:
        mode = self._sim._mode
        return {
            "state": mode or "disabled",
            "mode": mode,
            "enabled": mode is not None,
            "match_time_left": self.match_time_left,
        }


class _SimGamepad:
    """The ``Gamepad`` global: the inputs ``Simulation.gamepad`` set."""

    def __init__(self, sim: "Simulation") -> None:
        self._sim = sim

    @property
    def connected(self) -> bool:
        return self._sim._pad_connected

    def get_value(self, name: str) -> Union[bool, float]:
        if name not in self._sim._pad:
            known = ", ".join(BUTTONS + AXES)
            raise UnknownParamError(f"gamepad has no param {name} (its params: {known})")
        if not self._sim._pad_connected:
            return False if name in BUTTONS else 0.0
        return self._sim._pad[name]

    def wait_for_change(self, timeout: float = 1.0) -> bool:
        return False


class Simulation:
    """A robot description's simulated robot running a team's code file in virtual time.

    ``robot``: a robot description (``examples/sim/robot.yaml``); ``code``: the team's
    code as ``pitcrew run`` takes it (optional: without it the robot only moves when
    written through ``sim.robot``); ``period``: how often a ``main`` runs (``pitcrew
    run --period``); ``lease``: the broker's output lease.
    """

    def __init__(
        self,
        robot: Union[str, os.PathLike],
        code: Union[str, os.PathLike, None] = None,
        *,
        period: float = 0.02,
        lease: float = 0.1,
    ) -> None:
        if not (0 < period <= 10 and 0 < lease <= 60):
            raise ValueError(f"period {period} s and lease {lease} s must be positive (and sane)")
        self._world = _native.SimWorld(os.fspath(robot))
        self._period = period
        self._lease = lease
        self._mode: Optional[str] = None
        self._match_end: Optional[float] = None
        self._looping = False
        self._next_main = 0.0
        self._pad: dict[str, Union[bool, float]] = {b: False for b in BUTTONS}
        self._pad.update({a: 0.0 for a in AXES})
        self._pad_connected = True
        self._outputs = {d["uid"]: set(self._world.outputs(d["uid"])) for d in self._world.devices()}
        self._written: dict[tuple[str, str], float] = {}
        #: One line per exception the code raised ("teleop_main failed at drive.py:61: ...").
        self.errors: list[str] = []
        #: The ``Robot`` global the code sees (writes made through it outside the code are
        #: sent at once).
        self.robot = StudentRobot(_SimRobot(self))
        self._path: Optional[str] = None
        self._module: Optional[types.ModuleType] = None
        if code is not None:
            self._path = os.path.abspath(os.fspath(code))
            self._module = self._load(self._path)

    # -- what a test looks at ------------------------------------------------------------

    @property
    def time(self) -> float:
        """Seconds of simulated time since the start."""
        return self._world.time

    @property
    def pose(self) -> Pose:
        """The robot's pose."""
        return Pose(*self._world.pose())

    def value(self, device: Any, param: str) -> Any:
        """A device param now (what the code's ``Robot.get_value`` would read)."""
        return self._world.get_value(device, param)

    def state(self) -> dict:
        """Pose, wheel speeds, battery and motors (``pitcrew sim state --json``'s keys)."""
        return self._world.state()

    def devices(self) -> list:
        """The simulated robot's devices, as ``Robot.devices()`` lists them."""
        return self._world.devices()

    # -- what a test does ----------------------------------------------------------------

    def gamepad(self, *, connected: bool = True, **inputs: Union[bool, float]) -> None:
        """Sets the driver's gamepad: ``sim.gamepad(joystick_left_y=0.5, button_a=True)``;
        inputs not given keep their value; ``connected=False`` reads neutral."""
        for name, value in inputs.items():
            if name in BUTTONS:
                self._pad[name] = bool(value)
            elif name in AXES:
                v = float(value)
                if not -1.0 <= v <= 1.0:
                    raise ValueError(f"{name} must lie in [-1, 1], got {v}")
                self._pad[name] = v
            else:
                raise UnknownParamError(f"gamepad has no input {name} (its inputs: {', '.join(BUTTONS + AXES)})")
        self._pad_connected = connected
        if self._mode == "teleop" and self._looping:
            # teleop_main also runs at once when the gamepad changes (pitcrew run).
            self._next_main = self.time

    def enable(self, mode: str) -> None:
        """Enables the robot in ``mode``: the code's ``<mode>_setup()`` runs now, its
        ``<mode>_main()`` now and every period after."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if self._mode is not None:
            self.disable()
        self._mode = mode
        self._looping = self._call(f"{mode}_setup")
        self._next_main = self.time

    def disable(self) -> None:
        """Disables the robot: nothing of the code runs, every output goes to its safe value
        and every device is disabled (as the broker does)."""
        self._mode = None
        self._looping = False
        self._match_end = None
        for device in self._outputs:
            self._world.make_safe(device, disable=True)
        self._written.clear()

    def run(self, seconds: float) -> None:
        """Lets ``seconds`` of simulated time pass, the code running as it would."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number not below 0, got {seconds}")
        end = self.time + seconds
        while self.time < end - _EPS:
            if self._looping and self.time >= self._next_main - _EPS:
                self._looping = self._call(f"{self._mode}_main")
                # The next period from this call; one that slept past it runs again at once.
                self._next_main = max(self._next_main + self._period, self.time)
                continue
            until = min(end, self._next_main) if self._looping else end
            self._advance(until)

    def match(self, autonomous: float = 15.0, teleop: float = 135.0) -> None:
        """A match: ``autonomous`` seconds enabled in autonomous, then ``teleop`` in teleop,
        then disabled (``Robot.match_time_left`` counts down each phase)."""
        for mode, seconds in (("autonomous", autonomous), ("teleop", teleop)):
            self.enable(mode)
            self._match_end = self.time + seconds
            self.run(seconds)
        self.disable()

    def place(self, x: float, y: float, heading: float = 0.0) -> None:
        """Puts the robot at ``x``, ``y`` (m) facing ``heading`` (rad), at rest."""
        self._world.place(x, y, heading)

    # -- the machinery -------------------------------------------------------------------

    def _advance(self, until: float) -> None:
        """Steps the physics to ``until``, expiring output leases on the way."""
        while self.time < until - _EPS:
            expiry = min(self._written.values(), default=None)
            stop = until if expiry is None else min(until, expiry + self._lease)
            if stop > self.time + _EPS:
                self._world.step(stop - self.time)
            for key, at in list(self._written.items()):
                if self.time >= at + self._lease - _EPS:
                    device, param = key
                    self._world.make_safe(device, [param])
                    del self._written[key]

    def _sleep(self, seconds: float) -> None:
        """The code's ``time.sleep``: simulated time passes, the code waits."""
        # As the real time.sleep refuses them: a NaN, a negative or an endless sleep.
        if math.isnan(seconds):
            raise ValueError("Invalid value NaN (not a number)")
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        if math.isinf(seconds):
            raise OverflowError("sleep length is too large")
        self._advance(self.time + seconds)

    def _call(self, name: str) -> bool:
        """Runs the code's ``name()`` and sends its writes; ``False`` when it raised (the
        mode's loop stops until the next enable)."""
        fn = getattr(self._module, name, None) if self._module is not None else None
        if fn is None:
            return True
        try:
            fn()
            self.robot._flush()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the code's failure, recorded
            self.robot._discard()
            self.errors.append(_log_failure(name, exc, self._path or ""))
            return False
        return True

    def _clock(self) -> types.ModuleType:
        """The ``time`` module the code sees."""
        clock = types.ModuleType("time", "The simulation's clock (pitcrew.sim).")
        for attr in dir(_real_time):
            if not attr.startswith("__"):
                setattr(clock, attr, getattr(_real_time, attr))
        clock.monotonic = lambda: self.time
        clock.perf_counter = lambda: self.time
        clock.time = lambda: EPOCH + self.time
        clock.monotonic_ns = lambda: int(self.time * 1e9)
        clock.perf_counter_ns = lambda: int(self.time * 1e9)
        clock.time_ns = lambda: int((EPOCH + self.time) * 1e9)
        clock.sleep = self._sleep
        return clock

    def _load(self, path: str) -> types.ModuleType:
        """Loads the code with ``Robot``, ``Gamepad`` and the simulated clock."""
        spec = importlib.util.spec_from_file_location("student_code", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        clock = self._clock()
        real_import = builtins.__import__

        def sim_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if name == "time" and level == 0:
                return clock
            return real_import(name, globals, locals, fromlist, level)

        own_builtins = dict(vars(builtins))
        own_builtins["__import__"] = sim_import
        module.__builtins__ = own_builtins  # type: ignore[attr-defined]
        module.Robot = self.robot  # type: ignore[attr-defined]
        module.Gamepad = _SimGamepad(self)  # type: ignore[attr-defined]
        spec.loader.exec_module(module)
        return module
