"""Python logging → the pitcrew log forwarder.

``log_to_forwarder(app="drive")`` adds a ``LogHandler`` to the root logger, so every
``logging`` record at or above ``level`` is published as a record of app ``drive``, beside
the suite's own (``pitcrew logs --app drive``). Publishing never blocks: records queue up
to a bound while the forwarder is away, and the number dropped is reported once it is back.
"""

from __future__ import annotations

import logging
from typing import Optional

from . import _native

__all__ = ["LogHandler", "log_to_forwarder"]


class LogHandler(logging.Handler):
    """A ``logging.Handler`` whose records reach the log forwarder.

    Each record carries the logger name, file, line and function, and, when it has one,
    the formatted traceback as ``exception``. ``app`` names this process's records; one
    process publishes as one app. ``namespace`` (default ``PITCREW_NAMESPACE``) or
    ``address`` (default the configured log backend) say where the forwarder is.
    """

    def __init__(
        self,
        app: str,
        level: int = logging.NOTSET,
        *,
        namespace: Optional[str] = None,
        address: Optional[str] = None,
    ) -> None:
        super().__init__(level)
        self.app = app
        self.address = _native._log_start(app, namespace, address)
        self._exception_formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exception = None
            if record.exc_info:
                exception = self._exception_formatter.formatException(record.exc_info)
            elif record.exc_text:
                exception = record.exc_text
            _native._log_emit(
                record.levelno,
                record.name,
                record.getMessage(),
                record.pathname,
                record.lineno,
                record.funcName or "",
                exception,
            )
        except Exception:  # noqa: BLE001 - logging must never raise into user code
            self.handleError(record)

    def close(self) -> None:
        """Delivers what is queued (at most half a second) and stops publishing."""
        _native._log_close()
        super().close()


def log_to_forwarder(
    app: str,
    level: int = logging.INFO,
    *,
    logger: Optional[logging.Logger] = None,
    namespace: Optional[str] = None,
    address: Optional[str] = None,
) -> LogHandler:
    """Publishes the records of ``logger`` (default: the root logger) at ``level`` and
    above to the log forwarder as app ``app``, and returns the handler. The logger's own
    level is lowered to ``level`` if it was higher, so the records are not filtered out
    before they reach the handler."""
    target = logger if logger is not None else logging.getLogger()
    for existing in target.handlers:
        if isinstance(existing, LogHandler) and existing.app == app:
            return existing
    handler = LogHandler(app, level, namespace=namespace, address=address)
    target.addHandler(handler)
    if target.level == logging.NOTSET or target.level > level:
        target.setLevel(level)
    return handler
