"""Logging: JSON lines on whatever stdout is at the time of writing."""

from __future__ import annotations

import io
import json
import logging
import sys

import structlog

from services.infra.logging import app_logger, configure_logging


def test_logging_follows_stdout_when_it_is_swapped_and_never_writes_to_a_closed_one() -> None:
    original = sys.stdout
    first, second = io.StringIO(), io.StringIO()
    try:
        sys.stdout = first
        configure_logging("test")
        structlog.get_logger().info("first.event", report_id="r1")
        first.close()  # what a finished test's captured stdout is
        sys.stdout = second
        structlog.get_logger().warning("second.event", report_id="r2")
        app_logger().warning("library line")
        lines = [json.loads(line) for line in second.getvalue().splitlines()]
    finally:
        sys.stdout = original
        configure_logging("tests", logging.INFO)
    assert [line["event"] for line in lines] == ["second.event", "library line"]
    assert lines[0]["service"] == "test" and lines[0]["report_id"] == "r2"
