"""robot.yaml: names for devices, and errors that name the file and the line."""

from __future__ import annotations

import pytest

import pitcrew
from conftest import koala_uid


def load(tmp_path, text: str) -> pitcrew.Robot:
    path = tmp_path / "robot.yaml"
    path.write_text(text)
    return pitcrew.Robot(namespace="py-robot-file", robot_file=path)


def error(tmp_path, text: str) -> pitcrew.RobotFileError:
    with pytest.raises(pitcrew.RobotFileError) as e:
        load(tmp_path, text)
    assert isinstance(e.value, ValueError)
    assert e.value.file == str(tmp_path / "robot.yaml")
    assert str(e.value).startswith(f"{e.value.file}:{e.value.line}: "), str(e.value)
    return e.value


def test_a_valid_file_names_devices(tmp_path):
    robot = load(tmp_path, f"# drive\nleft_drive: koala-bear {koala_uid(1)}\n")
    assert [d["name"] for d in robot.devices()] == ["left_drive"]


def test_errors_carry_file_and_line(tmp_path):
    e = error(tmp_path, f"left_drive: koala-bear {koala_uid(1)}\nright_drive: koala-beer {koala_uid(2)}\n")
    assert e.line == 2
    assert "`koala-beer` is not a Smart Device type" in str(e)

    e = error(tmp_path, f"a: koala-bear {koala_uid(1)}\n\n\na: koala-bear {koala_uid(2)}\n")
    assert (e.line, str(e).split(": ", 1)[1]) == (4, "`a` is named twice (first on line 1)")

    e = error(tmp_path, f"a: koala-bear {koala_uid(1)}\nb: koala-bear 12345\n")
    assert e.line == 2
    assert "so it is a limit-switch, not a koala-bear" in str(e)

    e = error(tmp_path, "a: koala-bear not-a-uid\n")
    assert e.line == 1 and "is not a device UID" in str(e)

    e = error(tmp_path, f"a: koala-bear {koala_uid(1)}\nb: [1, 2\n")
    assert e.line >= 2 and "YAML syntax error" in str(e)

    e = error(tmp_path, f"2fast: koala-bear {koala_uid(1)}\n")
    assert e.line == 1 and "not a valid device name" in str(e)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(pitcrew.RobotFileError) as e:
        pitcrew.Robot(robot_file=tmp_path / "nope.yaml")
    assert e.value.line is None
    assert str(e.value).startswith(str(tmp_path / "nope.yaml") + ": cannot read")
