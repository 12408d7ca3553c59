"""Type stubs of the native half of the pitcrew package (import ``pitcrew``, not this)."""

from os import PathLike
from typing import Any, Optional, Union

_Path = Union[str, PathLike[str]]
_Device = Union[str, int]
_ParamValue = Union[bool, int, float, bytes]

class Robot:
    """The robot's Smart Devices, read and written through their shared-memory buffers.

    A device is named by its decimal UID (``str`` or ``int``) or by a name from the robot
    file (``robot.yaml``: ``left_drive: koala-bear 6140...``).
    """

    def __init__(
        self,
        namespace: Optional[str] = None,
        robot_file: Optional[_Path] = None,
        catalog: Optional[_Path] = None,
    ) -> None:
        """Opens the robot of ``namespace`` (default ``PITCREW_NAMESPACE``, else ``rt``)
        with the names of ``robot_file`` and the catalog file ``catalog`` (default
        ``PITCREW_CATALOG``, else the built-in catalog). Raises ``RobotFileError`` (with
        ``file`` and ``line``) for a robot file that does not load."""
    @property
    def namespace(self) -> str:
        """The instance namespace."""
    @property
    def mode(self) -> Optional[str]:
        """``"autonomous"`` or ``"teleop"`` while the robot is enabled, else ``None``."""
    @property
    def enabled(self) -> bool:
        """Whether controllers drive the outputs now."""
    @property
    def match_time_left(self) -> Optional[float]:
        """Seconds left in the running match, or ``None`` without one."""
    def state(self) -> dict[str, Any]:
        """The whole robot state (``state``, ``mode``, ``enabled``, ``estopped``,
        ``reason``, ``link``, ``match``, ...), as ``pitcrew state --json`` prints it."""
    def wait_for_change(self, timeout: float = 1.0) -> bool:
        """Blocks until the robot state changes or ``timeout`` seconds pass (other Python
        threads run meanwhile); whether it changed. Raises ``InvalidValueError`` for a
        timeout outside 0 to 3600."""
    def get_value(self, device: _Device, param: str) -> _ParamValue:
        """Reads a sensed param: ``bool``, ``int`` or ``float`` by its catalog type.

        Raises ``NoDeviceError``, ``NotConnectedError``, ``UnknownParamError`` or
        ``AccessError`` (a write-only param)."""
    def set_value(self, device: _Device, param: str, value: Union[bool, int, float], *, clamp: bool = False) -> None:
        """Writes a param's desired value; the device broker sends it at once.

        Raises ``WrongTypeError`` (a number for a bool, a float for an int, a bool for a
        number), ``InvalidValueError`` (NaN, an int beyond the type), ``OutOfBoundsError``
        (beyond the catalog's bounds; nothing is written unless ``clamp=True``), and the
        errors of ``get_value`` (``AccessError`` for a sensed param)."""
    def check_value(self, device: _Device, param: str, value: Union[bool, int, float], *, clamp: bool = False) -> None:
        """Checks a write as ``set_value`` would, raising the same exceptions, but writes
        nothing (``pitcrew run`` checks a ``main``'s writes where they are made and sends
        them when it returns)."""
    def devices(self) -> list[dict[str, Any]]:
        """Every Smart Device with a buffer now and every device of the robot file, as
        dicts with ``name`` (robot-file name, else the UID), ``type``, ``uid`` (decimal
        ``str``) and ``connected`` (``bool``)."""

class Gamepad:
    """A gamepad of the robot, by index; neutral (nothing pressed, sticks centred) when it
    is disconnected, the driver link is gone, or its receiver is not running."""

    def __init__(self, index: int = 0, *, namespace: Optional[str] = None) -> None: ...
    @property
    def index(self) -> int: ...
    @property
    def connected(self) -> bool:
        """Whether the gamepad is connected now."""
    def get_value(self, name: str) -> Union[bool, float]:
        """An input by catalog name: buttons (``button_a``, ``l_bumper``, ``dpad_up``, ...)
        as ``bool``, sticks (``joystick_left_x``, ``joystick_left_y``, ``joystick_right_x``,
        ``joystick_right_y``) as ``float`` in [-1, 1]. Raises ``UnknownParamError``."""
    def wait_for_change(self, timeout: float = 1.0) -> bool:
        """Blocks until the receiver stores new input or the gamepad connects or
        disconnects, or ``timeout`` seconds pass (other Python threads run meanwhile);
        whether it changed since the last call. It sleeps on the buffer's futex, so code
        that waits here reacts to a stick change within microseconds instead of at its
        next period. Raises ``InvalidValueError`` for a timeout outside 0 to 3600."""

class Client:
    """A connection to the router of one instance."""

    def __init__(
        self,
        namespace: Optional[str] = None,
        endpoint: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def identity(self) -> str: ...
    def call(self, service: str, method: str, *args: Any, timeout: Optional[float] = None) -> Any:
        """Calls ``service.method(*args)``; raises ``RemoteError`` or ``RpcTimeoutError``."""
    def notify(self, service: str, method: str, *args: Any) -> None:
        """Sends ``service.method(*args)`` as a notification (no answer)."""

def call(service: str, method: str, *args: Any, timeout: Optional[float] = None) -> Any:
    """Calls ``service.method(*args)`` through the router of ``PITCREW_NAMESPACE`` and
    returns the result; raises ``RemoteError`` (``.code``, ``.message``, ``.context``) or
    ``RpcTimeoutError`` after ``timeout`` seconds (default ``PITCREW_CALL_TIMEOUT``, 5 s)."""

def notify(service: str, method: str, *args: Any) -> None:
    """Sends ``service.method(*args)`` as a notification (no answer)."""

def _log_start(app: str, namespace: Optional[str] = None, address: Optional[str] = None) -> str: ...
def _log_emit(
    levelno: int,
    logger: str,
    message: str,
    file: str,
    line: int,
    function: str,
    exception: Optional[str] = None,
) -> None: ...
def _log_close() -> None: ...

class SimWorld:
    """The simulated robot of a robot description, stepped by its caller (``pitcrew.sim``)."""

    def __init__(self, path: str) -> None: ...
    def step(self, seconds: float) -> None: ...
    def get_value(self, device: _Device, param: str) -> _ParamValue: ...
    def check_value(self, device: _Device, param: str, value: Union[bool, int, float], *, clamp: bool = False) -> _ParamValue: ...
    def set_value(self, device: _Device, param: str, value: Union[bool, int, float], *, clamp: bool = False) -> None: ...
    def make_safe(self, device: _Device, params: Optional[list[str]] = None, *, disable: bool = False) -> None: ...
    def outputs(self, device: str) -> list[str]: ...
    def devices(self) -> list[dict[str, Any]]: ...
    def pose(self) -> tuple[float, float, float]: ...
    def place(self, x: float, y: float, heading: float) -> None: ...
    def reset(self) -> None: ...
    @property
    def time(self) -> float: ...
    def state(self) -> dict[str, Any]: ...
