"""The exceptions of the pitcrew package.

Every exception is a ``pitcrew.Error``; most are also the built-in exception a Python
programmer expects (``OutOfBoundsError`` is a ``ValueError``, ``UnknownParamError`` a
``LookupError``, ``RpcTimeoutError`` a ``TimeoutError``), so ``except ValueError`` works too.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
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


class Error(Exception):
    """Base class of every pitcrew exception."""


class NoDeviceError(Error, LookupError):
    """No device of that name: not in the robot file, or not a UID of a catalog type."""


class NotConnectedError(Error):
    """The device is known but not there now: unplugged, or pitcrew-devices not running."""


class UnknownParamError(Error, LookupError):
    """The device type (or gamepad) has no param of that name; the message lists them."""


class AccessError(Error):
    """Reading a param that is not readable, or writing one that is not writeable."""


class WrongTypeError(Error, TypeError):
    """A value of the wrong kind for the param: a number for a bool, a float for an int."""


class InvalidValueError(Error, ValueError):
    """A value the param's type cannot hold: NaN, or an int beyond its range."""


class OutOfBoundsError(InvalidValueError):
    """A number beyond the catalog's bounds of the param ("duty_cycle_a is at most 1.0,
    got 3"). Nothing is written; pass ``clamp=True`` to ``set_value`` to clamp instead."""


class RobotFileError(Error, ValueError):
    """A robot file (robot.yaml) that does not load: ``file`` and ``line`` say where."""

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None):
        super().__init__(message)
        self.file = file
        self.line = line


class RemoteError(Error):
    """An RPC error response, or an RPC that could not be delivered.

    ``code`` is the wire code (``no_such_method``, ``invalid_params``, ``handler_failed``,
    ``timeout``, ``unreachable``, ``busy``, ``bad_request``, ``shutting_down``, or one a
    newer peer sends), ``message`` the sentence, ``context`` a dict of extra fields.
    """

    def __init__(self, code: str, message: str, context: Optional[dict[Any, Any]] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.context = context if context is not None else {}


class RpcTimeoutError(RemoteError, TimeoutError):
    """An RPC with no answer within its timeout (code ``timeout``)."""
