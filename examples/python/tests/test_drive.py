"""Tests of drive.py as a team writes them: its code against the simulated robot
(examples/sim/robot.yaml) in virtual time, with pytest.

    python3 -m pytest examples/python/tests
"""

from pathlib import Path

import pytest

from pitcrew.sim import Simulation

HERE = Path(__file__).resolve().parent
ROBOT = HERE.parent.parent / "sim" / "robot.yaml"
CODE = HERE.parent / "drive.py"


@pytest.fixture
def sim():
    return Simulation(ROBOT, CODE)


def test_autonomous_ends_about_ninety_centimetres_ahead(sim):
    start = sim.pose
    sim.enable("autonomous")
    sim.run(seconds=15)
    assert sim.pose.x - start.x == pytest.approx(0.90, abs=0.05)
    assert sim.pose.y == pytest.approx(start.y, abs=0.01)


def test_slow_mode_drives_at_a_third_of_the_speed(sim):
    sim.enable("teleop")
    sim.gamepad(joystick_left_y=1.0, joystick_right_y=1.0)
    sim.run(seconds=2)
    fast = sim.state()["wheel_speeds"][0]
    sim.gamepad(button_a=True)
    sim.run(seconds=0.1)
    sim.gamepad(button_a=False)
    sim.run(seconds=2)
    slow = sim.state()["wheel_speeds"][0]
    assert slow == pytest.approx(0.3 * fast, rel=0.1)


def test_the_line_follower_sees_the_tape_the_robot_drives_along(sim):
    sim.enable("autonomous")
    for _ in range(10):
        sim.run(seconds=0.1)
        assert sim.robot.get_value("4728261694781873192961", "center") == 1.0
