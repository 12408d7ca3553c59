"""Robot.get_value / set_value against the real device broker and emulated devices."""

from __future__ import annotations

import math

import pytest

import pitcrew
from conftest import Devices, eventually, koala_uid, limit_switch_uid

KOALA = koala_uid(6140)
SWITCH = limit_switch_uid(77)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    robot_file = tmp_path_factory.mktemp("robot") / "robot.yaml"
    robot_file.write_text(
        f"# the drive base\nleft_drive: koala-bear {KOALA}\nbump: limit-switch {SWITCH}\n"
        f"spare: koala-bear {koala_uid(9999)}\n"
    )
    s = Devices(
        "dev",
        f'koala-bear:{KOALA}:{{"enc_pos_a": 12.5}}',
        f'limit-switch:{SWITCH}:{{"switch1": true}}',
        robot_file=robot_file,
    )
    s.wait_connected(KOALA)
    s.wait_connected(SWITCH)
    yield s
    s.close()


def test_set_value_reaches_the_emulated_device_and_reads_back(suite):
    robot = suite.robot
    robot.set_value("left_drive", "duty_cycle_a", 0.5)
    eventually(
        "the DEV_WRITE at the device",
        lambda: [e for e in suite.emulator.seen(KOALA, "write") if e["values"].get("duty_cycle_a") == 0.5],
    )
    # The emulator echoes what it was written: the sensed value follows.
    eventually("duty_cycle_a to read 0.5", lambda: robot.get_value("left_drive", "duty_cycle_a") == 0.5)
    # By UID, as a str or an int, the same device.
    assert robot.get_value(KOALA, "duty_cycle_a") == 0.5
    assert robot.get_value(int(KOALA), "duty_cycle_a") == 0.5
    robot.set_value(KOALA, "motor_enabled_a", True)
    robot.set_value(KOALA, "drive_mode_a", 3)
    robot.set_value("left_drive", "duty_cycle_b", -1)  # an int for a float param
    eventually(
        "the other writes at the device",
        lambda: [
            e
            for e in suite.emulator.seen(KOALA, "write")
            if e["values"].get("drive_mode_a") == 3 or e["values"].get("duty_cycle_b") == -1.0
        ],
    )


def test_sensed_values_have_the_param_type(suite):
    robot = suite.robot
    eventually("the sensed 12.5", lambda: robot.get_value("left_drive", "enc_pos_a") == 12.5, patience=5.0)
    assert robot.get_value("bump", "switch1") is True
    assert robot.get_value("bump", "switch0") is False
    assert isinstance(robot.get_value("left_drive", "drive_mode_a"), int)


def test_devices_lists_buffers_and_robot_file_names(suite):
    rows = {d["uid"]: d for d in suite.robot.devices()}
    assert rows[KOALA] == {"name": "left_drive", "type": "koala-bear", "uid": KOALA, "connected": True}
    assert rows[SWITCH]["name"] == "bump"
    spare = rows[koala_uid(9999)]
    assert spare == {"name": "spare", "type": "koala-bear", "uid": koala_uid(9999), "connected": False}
    # Without a robot file, a device is named by its UID.
    bare = pitcrew.Robot(namespace=suite.ns)
    assert {d["name"] for d in bare.devices()} == {KOALA, SWITCH}


def test_bounds_are_errors_with_the_students_value(suite):
    robot = suite.robot
    with pytest.raises(pitcrew.OutOfBoundsError) as e:
        robot.set_value("left_drive", "duty_cycle_a", 3)
    assert str(e.value) == "left_drive: duty_cycle_a is at most 1.0, got 3"
    assert isinstance(e.value, ValueError)
    with pytest.raises(pitcrew.OutOfBoundsError, match=r"duty_cycle_a is at least -1\.0, got -1\.5"):
        robot.set_value("left_drive", "duty_cycle_a", -1.5)
    with pytest.raises(pitcrew.OutOfBoundsError, match="pid_kp_a is at least 0.0, got -2"):
        robot.set_value("left_drive", "pid_kp_a", -2)
    # Asked for, clamping writes the bound.
    robot.set_value("left_drive", "duty_cycle_a", 3, clamp=True)
    eventually("the clamped value", lambda: robot.get_value("left_drive", "duty_cycle_a") == 1.0)


def test_wrong_types_and_invalid_values_raise_the_documented_exceptions(suite):
    robot = suite.robot
    with pytest.raises(pitcrew.WrongTypeError, match="duty_cycle_a is a float, got 'fast' \\(str\\); use a number") as e:
        robot.set_value("left_drive", "duty_cycle_a", "fast")
    assert isinstance(e.value, TypeError)
    with pytest.raises(pitcrew.WrongTypeError, match="use True or False"):
        robot.set_value("left_drive", "motor_enabled_a", 1)
    with pytest.raises(pitcrew.WrongTypeError, match="drive_mode_a is a uint8, got 1.5"):
        robot.set_value("left_drive", "drive_mode_a", 1.5)
    with pytest.raises(pitcrew.WrongTypeError):
        robot.set_value("left_drive", "duty_cycle_a", True)
    with pytest.raises(pitcrew.InvalidValueError, match=r"from 0 to 255\), got 300"):
        robot.set_value("left_drive", "drive_mode_a", 300)
    with pytest.raises(pitcrew.InvalidValueError, match="cannot be NaN"):
        robot.set_value("left_drive", "duty_cycle_a", math.nan)
    with pytest.raises(TypeError, match="a device is named by a str"):
        robot.get_value(None, "duty_cycle_a")


def test_unknown_names_and_access_rules(suite):
    robot = suite.robot
    with pytest.raises(pitcrew.NoDeviceError) as e:
        robot.get_value("lft_drive", "duty_cycle_a")
    assert str(e.value).startswith("no device lft_drive in ")
    assert "robot.yaml (it names left_drive, bump, spare)" in str(e.value)
    assert isinstance(e.value, LookupError)
    with pytest.raises(pitcrew.UnknownParamError, match="left_drive: koala-bear has no param duty_cycle \\(its params: duty_cycle_a"):
        robot.get_value("left_drive", "duty_cycle")
    with pytest.raises(pitcrew.UnknownParamError):
        robot.set_value("left_drive", "speed", 1.0)
    with pytest.raises(pitcrew.AccessError, match="bump: switch0 is not writeable"):
        robot.set_value("bump", "switch0", True)
    with pytest.raises(pitcrew.AccessError, match="left_drive: pid_kp_a is not readable"):
        robot.get_value("left_drive", "pid_kp_a")
    with pytest.raises(pitcrew.NotConnectedError, match="spare is not connected"):
        robot.get_value("spare", "duty_cycle_a")
    with pytest.raises(pitcrew.NoDeviceError, match="which is no device type"):
        robot.get_value(str(250 << 72), "x")
    # Every one of them is a pitcrew.Error.
    with pytest.raises(pitcrew.Error):
        robot.set_value("left_drive", "duty_cycle_a", 2)


def test_a_device_that_goes_away_is_not_connected(suite_factory):
    uid = koala_uid(4242)
    s = suite_factory(Devices, "gone", f"koala-bear:{uid}")
    s.wait_connected(uid)
    s.robot.set_value(uid, "duty_cycle_a", 0.25)
    s.emulator.stop()

    def refused():
        try:
            s.robot.set_value(uid, "duty_cycle_a", 0.25)
        except pitcrew.NotConnectedError as e:
            return str(e)
        return None

    message = eventually("writes to be refused", refused)
    assert "is disconnected" in message
    assert not [d for d in s.robot.devices() if d["uid"] == uid and d["connected"]]


def test_the_robot_state_reads_from_shared_memory_and_wakes_on_a_change(suite_factory):
    s = suite_factory(Devices, "state", f"koala-bear:{koala_uid(4242)}")
    robot = s.robot
    assert robot.mode == "teleop" and robot.enabled
    assert robot.state()["link"] == "pytest-station"
    assert robot.match_time_left is None
    assert robot.wait_for_change(0.05) is False, "nothing changed"
    s.station.disable()
    eventually("the wake-up", lambda: robot.wait_for_change(0.5))
    assert robot.mode is None and not robot.enabled
    assert "disabled by driver station" in robot.state()["reason"]
    with pytest.raises(pitcrew.InvalidValueError):
        robot.wait_for_change(-1)
