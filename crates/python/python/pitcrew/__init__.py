"""pitcrew for Python: a team's robot code over the pitcrew runtime.

* ``Robot`` reads and writes Smart Device params through the same shared-memory buffers
  as the Rust controllers (``get_value``, ``set_value``, ``devices``);
* ``Gamepad`` reads the driver's gamepad by catalog name, neutral when the link is gone;
* ``call`` / ``notify`` / ``Client`` make RPC calls through the router;
* ``log_to_forwarder`` sends Python ``logging`` records to the log forwarder;
* the exceptions are in ``pitcrew.errors`` and re-exported here.

    import pitcrew
    robot = pitcrew.Robot(robot_file="robot.yaml")
    pad = pitcrew.Gamepad(0)
    robot.set_value("left_drive", "duty_cycle_a", pad.get_value("joystick_left_y"))
"""

from .errors import (
    AccessError,
    Error,
    InvalidValueError,
    NoDeviceError,
    NotConnectedError,
    OutOfBoundsError,
    RemoteError,
    RobotFileError,
    RpcTimeoutError,
    UnknownParamError,
    WrongTypeError,
)
from ._native import Client, Gamepad, Robot, call, notify
from .log import LogHandler, log_to_forwarder

__all__ = [
    "Robot",
    "Gamepad",
    "Client",
    "call",
    "notify",
    "LogHandler",
    "log_to_forwarder",
    "Error",
    "NoDeviceError",
    "NotConnectedError",
    "UnknownParamError",
    "AccessError",
    "WrongTypeError",
    "InvalidValueError",
    "OutOfBoundsError",
    "RobotFileError",
    "RemoteError",
    "RpcTimeoutError",
]
