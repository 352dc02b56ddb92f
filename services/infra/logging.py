"""structlog as JSON lines on stdout, for our own events and for every library's logging
(FastStream, aiohttp, PyMongo) alike. Never log patient data: ids only."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

# What a library's log record gets before rendering, like our own events.
_FOREIGN_CHAIN: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _Stdout:
    """Whatever `sys.stdout` is when a line is written, not when logging was configured: a
    process (or a test) that swaps stdout later must not leave logging writing to a closed
    file."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure_logging(service: str, level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stdout())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_Stdout())
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
