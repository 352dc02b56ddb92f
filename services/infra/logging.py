"""structlog as JSON lines on stdout, for our own events and for every library's logging
(FastStream, aiohttp, PyMongo) alike. Never log patient data: ids only."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO, cast

import structlog

# What a library's log record gets before rendering, like our own events.
_FOREIGN_CHAIN: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _Stream:
    """Whatever `sys.stdout` (or `sys.stderr`) is when a line is written, not when logging
    was configured: a process (or a test) that swaps it later must not leave logging writing
    to a closed file."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        return int(getattr(sys, self._name).write(text))

    def flush(self) -> None:
        getattr(sys, self._name).flush()


def configure_logging(
    service: str, level: int = logging.INFO, stream: Literal["stdout", "stderr"] = "stdout"
) -> None:
    """Services log to stdout; a command whose stdout is its answer logs to stderr.
    Configuring again (a command run by a test) takes effect for every logger at once."""
    output = _Stream(stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, output)),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_FOREIGN_CHAIN,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    app_logger().setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def app_logger() -> logging.Logger:
    """The stdlib logger FastStream reports start-up and shutdown through."""
    return logging.getLogger("resultflow.app")
