"""Python logging reaches the real log forwarder through pitcrew.LogHandler."""

from __future__ import annotations

import logging

import pitcrew
from conftest import Suite, eventually


def test_records_reach_the_forwarder_with_file_line_and_traceback(suite_factory):
    suite: Suite = suite_factory(Suite, "logs")
    suite.router()
    suite.spawn("pitcrew-logfwd")
    suite.wait_for("logfwd-service")
    log = logging.getLogger("pytest.drive")
    handler = pitcrew.log_to_forwarder(app="pytest-drive", logger=log, namespace=suite.ns)
    try:
        assert pitcrew.log_to_forwarder(app="pytest-drive", logger=log) is handler
        log.debug("not at this level")
        log.warning("battery at %d%%", 11)
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("autonomous_main failed")

        def records():
            got = suite.client.call("logfwd-service", "recent_logs", 10, "debug", "pytest-drive")
            return got if len(got) >= 2 else None

        warn, error = eventually("the records at the forwarder", records)[-2:]
    finally:
        log.removeHandler(handler)
        handler.close()
    assert warn["event"] == "battery at 11%"
    assert warn["level"] == "warn"
    assert warn["app"] == "pytest-drive"
    assert warn["logger"] == "pytest.drive"
    assert warn["file"].endswith("test_logging.py")
    assert isinstance(warn["line"], int) and warn["line"] > 0
    assert warn["function"] == "test_records_reach_the_forwarder_with_file_line_and_traceback"
    assert error["level"] == "error"
    assert "ZeroDivisionError" in error["exception"] and "test_logging.py" in error["exception"]
