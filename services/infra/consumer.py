"""How every service consumes: validate, bind the correlation id, ack only after success.

A handler raises `PermanentError` for a message that can never succeed (bad data, a
template that does not render): the report is failed with that reason and the message goes
to its dead-letter queue at once. Any other exception is retried (requeued) until the
queue's delivery limit, and on the last attempt handled like a permanent error. A message
that is not a valid contract goes to the dead-letter queue, with the reason logged.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage
from pydantic import ValidationError

from contracts import topology
from contracts.v1 import Message
from services.infra.broker import DEAD_LETTER_EXCHANGE, EXCHANGE, rabbit_queue
from services.infra.errors import PermanentError
from services.infra.metrics import HANDLING_SECONDS, MESSAGES_FAILED, MESSAGES_HANDLED
from services.infra.service import Resources

log = structlog.get_logger()

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]
GiveUp = Callable[[M, str], Awaitable[None]]


def delivery_count(raw: RabbitMessage) -> int:
    """How often RabbitMQ delivered this message before (quorum queues count it)."""
    headers = raw.raw_message.headers or {}
    count = headers.get("x-delivery-count", 0)
    return int(count) if isinstance(count, int | str) else 0


def validation_summary(error: ValidationError) -> str:
    # Field paths and error types only: the values may be patient data.
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in error.errors()
    )


def subscribe(
    resources: Resources,
    message_type: type[M],
    *,
    on_give_up: GiveUp[M],
    retry_backoff: float | None = None,
) -> Callable[[Handler[M]], Handler[M]]:
    """`retry_backoff`: this queue's first redelivery delay, when not the service's own."""
    queue = topology.queue_for(message_type)
    broker = resources.broker
    if retry_backoff is None:
        retry_backoff = resources.settings.retry_backoff_seconds
    # Where the setup job declared the topology, the queue is only looked up: the service's
    # broker user may read it, not configure it.
    declare = resources.settings.setup_on_start

    def decorator(handler: Handler[M]) -> Handler[M]:
        @broker.subscriber(rabbit_queue(queue, declare), EXCHANGE, ack_policy=AckPolicy.MANUAL)
        async def consume(raw: RabbitMessage) -> None:
            await _consume(broker, raw, message_type, handler, on_give_up, retry_backoff)

        return handler

    return decorator


async def _consume(
    broker: RabbitBroker,
    raw: RabbitMessage,
    message_type: type[M],
    handler: Handler[M],
    on_give_up: GiveUp[M],
    retry_backoff: float,
) -> None:
    kind = {"service": topology.queue_for(message_type).consumer}
    kind["message_type"] = message_type.routing_key
    with structlog.contextvars.bound_contextvars(
        correlation_id=raw.correlation_id, message_type=message_type.routing_key
    ):
        try:
            message = message_type.model_validate_json(raw.body)
        except ValidationError as error:
            reason = validation_summary(error)
            log.error("message.rejected_invalid", reason=reason)
            MESSAGES_FAILED.labels(**kind, outcome="invalid").inc()
            await _dead_letter_with_reason(broker, raw, message_type, reason)
            return
        ids: dict[str, Any] = {
            key: getattr(message, key)
            for key in ("report_id", "batch_id", "message_id")
            if hasattr(message, key)
        }
        with structlog.contextvars.bound_contextvars(correlation_id=message.correlation_id, **ids):
            attempt = delivery_count(raw) + 1
            started = time.perf_counter()
            try:
                await handler(message)
            except PermanentError as error:
                # The reason may quote the data (a phone number): it is stored for lab staff,
                # the log gets only its kind.
                log.error("message.failed_permanently", error=type(error).__name__)
                MESSAGES_FAILED.labels(**kind, outcome="permanent").inc()
                await _give_up(raw, message, str(error), on_give_up)
                return
            except Exception as error:
                failure = {"error": type(error).__name__, "stack": _frames(error)}
                if attempt < topology.DELIVERY_LIMIT:
                    log.warning("message.retrying", attempt=attempt, **failure)
                    MESSAGES_FAILED.labels(**kind, outcome="retried").inc()
                    # Back off, so a provider's rate limit or a restarting server gets time.
                    await asyncio.sleep(retry_delay(attempt, retry_backoff))
                    await raw.nack(requeue=True)
                    return
                reason = f"gave up after {attempt} attempts: {type(error).__name__}: {error}"
                log.error("message.gave_up", attempt=attempt, **failure)
                MESSAGES_FAILED.labels(**kind, outcome="gave_up").inc()
                await _give_up(raw, message, reason, on_give_up)
                return
            await raw.ack()
            HANDLING_SECONDS.labels(**kind).observe(time.perf_counter() - started)
            MESSAGES_HANDLED.labels(**kind).inc()


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before the `attempt`-th retry: doubling from `backoff`, at most 30."""
    return float(min(backoff * 2 ** (attempt - 1), 30.0))


def _frames(error: BaseException) -> str:
    # Where it failed, without the exception's text, which may quote patient data.
    return "".join(traceback.format_tb(error.__traceback__)[-5:])


async def _dead_letter_with_reason(
    broker: RabbitBroker, raw: RabbitMessage, message_type: type[Message], reason: str
) -> None:
    """Park a message that is not a valid contract in its dead-letter queue, with the reason
    in a header, so whoever sent it (an LIS team) can see what was wrong."""
    queue = topology.queue_for(message_type)
    await broker.publish(
        raw.body,
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=queue.dead_letter_queue,
        persist=True,
        mandatory=True,
        headers={**(raw.headers or {}), "x-rejection-reason": reason},
        correlation_id=raw.correlation_id,
        content_type=raw.content_type,
    )
    await raw.ack()


async def _give_up(raw: RabbitMessage, message: M, reason: str, on_give_up: GiveUp[M]) -> None:
    """Record the failure, then dead-letter the message; if recording fails, retry later
    (past the delivery limit RabbitMQ dead-letters it by itself)."""
    try:
        await on_give_up(message, reason)
    except Exception:
        log.exception("message.give_up_failed")
        await raw.nack(requeue=True)
        return
    await raw.reject()
