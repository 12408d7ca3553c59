"""``pitcrew.sim``: a team's code against the simulated robot in virtual time, under the
rules of ``pitcrew run`` (no suite, no real time: the physics and the code take turns)."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

import pitcrew
from pitcrew.sim import Simulation

ROOT = Path(__file__).resolve().parents[3]
ROBOT = ROOT / "examples" / "sim" / "robot.yaml"
DRIVE = ROOT / "examples" / "python" / "drive.py"
KOALA = "61396659489217615757313"


def code(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "code.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_whole_match_runs_in_well_under_five_seconds_and_the_same_twice():
    def match():
        sim = Simulation(ROBOT, DRIVE)
        sim.gamepad(joystick_left_y=0.3, joystick_right_y=0.25)
        started = time.perf_counter()
        sim.match(autonomous=15, teleop=135)
        return sim.pose, sim.state(), sim.errors, time.perf_counter() - started

    first, second = match(), match()
    assert first[:3] == second[:3]
    assert first[2] == [] and first[1]["time"] == pytest.approx(150.0)
    assert first[3] < 5.0 and second[3] < 5.0, (first[3], second[3])


def test_autonomous_drives_forward_one_second_and_the_encoder_counts_it():
    sim = Simulation(ROBOT, DRIVE)
    sim.enable("autonomous")
    sim.run(0.5)
    assert sim.state()["wheel_speeds"][0] > 0.5
    sim.run(14.5)
    moved = sim.pose.x - 0.5
    assert 0.8 < moved < 1.0, moved
    assert sim.pose.y == 1.5 and sim.pose.heading == 0.0
    counts = moved / (2 * 3.141592653589793 * 0.05) * 1440
    assert sim.value(KOALA, "enc_pos_a") == pytest.approx(counts, rel=1e-3)
    assert sim.state()["wheel_speeds"] == (0.0, 0.0)


def test_the_codes_clock_is_the_simulations(tmp_path):
    path = code(
        tmp_path,
        """
        import time
        from time import monotonic
        seen = []
        def autonomous_setup():
            seen.append(("setup", time.monotonic()))
        def autonomous_main():
            seen.append(("main", monotonic()))
            if len(seen) == 3:
                time.sleep(0.5)  # simulated: the physics moves on
                seen.append(("woke", time.monotonic(), time.time()))
        """,
    )
    sim = Simulation(ROBOT, path)
    sim.run(1.0)
    sim.enable("autonomous")
    sim.run(0.05)
    seen = sim._module.seen
    assert seen[0] == ("setup", pytest.approx(1.0))
    assert [round(t, 6) for _, t in seen[1:3]] == [1.0, 1.02]
    assert seen[3][1] == pytest.approx(1.52) and seen[3][2] == pytest.approx(1767225600.0 + 1.52)
    # The run was to end at 1.05; the sleeping main finished first, and nothing else ran.
    assert sim.time == pytest.approx(1.52)


def test_a_main_that_stops_writing_lets_the_lease_stop_the_motors(tmp_path):
    path = code(
        tmp_path,
        f"""
        import time
        def autonomous_main():
            if time.monotonic() < 0.5:
                Robot.set_value("{KOALA}", "duty_cycle_a", 1.0)
                Robot.set_value("{KOALA}", "duty_cycle_b", 1.0)
        """,
    )
    sim = Simulation(ROBOT, path)
    sim.enable("autonomous")
    sim.run(0.49)
    assert sim.value(KOALA, "duty_cycle_a") == 1.0
    sim.run(0.08)
    assert sim.value(KOALA, "duty_cycle_a") == 1.0, "within the 100 ms lease"
    sim.run(0.05)
    assert sim.value(KOALA, "duty_cycle_a") == 0.0, "the lease ran out"


def test_an_exception_is_recorded_with_the_line_and_stops_the_loop_until_the_next_enable(tmp_path):
    path = code(
        tmp_path,
        f"""
        calls = 0
        def teleop_main():
            global calls
            calls += 1
            Robot.set_value("{KOALA}", "duty_cycle_a", 0.5)
            if calls == 2:
                Robot.set_value("{KOALA}", "duty_cycle_a", 2.0)
        """,
    )
    sim = Simulation(ROBOT, path)
    sim.enable("teleop")
    sim.run(1.0)
    assert sim._module.calls == 2
    assert len(sim.errors) == 1 and "code.py:8" in sim.errors[0], sim.errors
    assert "OutOfBoundsError" in sim.errors[0]
    sim.enable("teleop")
    sim.run(0.1)
    assert sim._module.calls > 2


def test_teleop_follows_the_sticks_and_disabling_stops_the_robot():
    sim = Simulation(ROBOT, DRIVE)
    sim.enable("teleop")
    sim.gamepad(joystick_left_y=-0.6, joystick_right_y=0.6)
    sim.run(1.0)
    assert sim.pose.heading > 0.5, sim.pose  # turning left in place
    assert sim.pose.x == pytest.approx(0.5, abs=1e-6)
    sim.disable()
    sim.run(5.0)
    assert sim.state()["wheel_speeds"] == (0.0, 0.0)
    heading = sim.pose.heading
    sim.gamepad(joystick_left_y=1.0, joystick_right_y=1.0)
    sim.run(1.0)
    assert sim.pose.heading == heading, "nothing runs while disabled"


def test_mistakes_are_errors_that_say_what_to_fix(tmp_path):
    with pytest.raises(pitcrew.RobotFileError, match="robot.yaml:2: unknown key `wheels`"):
        bad = tmp_path / "robot.yaml"
        bad.write_text(f"field: {ROBOT.parent / 'field.yaml'}\nwheels: 4\n")
        Simulation(bad)
    sim = Simulation(ROBOT)
    with pytest.raises(ValueError, match="mode must be one of"):
        sim.enable("auto")
    with pytest.raises(pitcrew.UnknownParamError, match="no input joystick_left"):
        sim.gamepad(joystick_left=1.0)
    with pytest.raises(pitcrew.NoDeviceError):
        sim.value("61396659489217615757314", "enc_pos_a")
    with pytest.raises(pitcrew.AccessError):
        sim.robot.get_value(KOALA, "pid_kp_a")
    with pytest.raises(ValueError, match="finite"):
        sim.run(float("inf"))
    with pytest.raises(pitcrew.InvalidValueError, match="finite"):
        sim.place(float("nan"), 1.0)
    assert sim.pose.x == 0.5, "nothing moved"


def test_the_codes_endless_or_nan_sleep_fails_as_the_real_one_does(tmp_path):
    path = code(
        tmp_path,
        """
        import time
        def autonomous_main():
            time.sleep(float("inf"))
        def teleop_main():
            time.sleep(float("nan"))
        """,
    )
    sim = Simulation(ROBOT, path)
    sim.enable("autonomous")
    sim.run(0.1)
    sim.enable("teleop")
    sim.run(0.1)
    assert "OverflowError" in sim.errors[0] and "ValueError" in sim.errors[1], sim.errors
