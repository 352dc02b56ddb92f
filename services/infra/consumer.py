"""How every service consumes: validate, bind the correlation id, ack only after success.

A handler raises `PermanentError` for a message that can never succeed (bad data, a
template that does not render): the report is failed with that reason and the message goes
to its dead-letter queue at once. Any other exception is retried (requeued) until the
queue's delivery limit, and on the last attempt handled like a permanent error. A message
that is not a valid contract goes to the dead-letter queue, with the reason logged. A change
that finds its report held by another transaction (`ContendedError`: one a killed process
left open, which MongoDB aborts only after 60 s) is published again as a new message and
this one acked, where the service's broker user may publish it: waiting it out then neither
blocks the queue nor uses up its delivery limit. Elsewhere the handler runs again in place.
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
from services.infra.errors import ContendedError, PermanentError
from services.infra.metrics import HANDLING_SECONDS, MESSAGES_FAILED, MESSAGES_HANDLED
from services.infra.service import Resources

log = structlog.get_logger()

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]
GiveUp = Callable[[M, str], Awaitable[None]]

# A message whose change met another transaction's lock (`ContendedError`) is tried again up
# to this often (each try waits `outbox.CONTENDED_SECONDS`, well past MongoDB's 60 s limit on
# an open transaction), then handled like any other failure: sent again as a new message
# where the consuming service may publish it (notify.patient), else run again in place.
CONTENDED_HEADER = "x-resultflow-contended"
CONTENDED_MOST = 30
CONTENDED_PAUSE_SECONDS = 0.5


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
            queue = topology.queue_for(message_type)
            may_send_again = queue.consumer in queue.published_by
            try:
                await _handle(handler, message, may_send_again)
            except ContendedError as error:
                contended = _contended_count(raw) + 1
                if may_send_again and contended <= CONTENDED_MOST:
                    # Held by a transaction a killed process left open (until MongoDB aborts
                    # it): give the message back as a new one, so waiting neither holds this
                    # consumer nor uses up deliveries each kill of this process would count.
                    log.warning("message.contended", times=contended, error=type(error).__name__)
                    MESSAGES_FAILED.labels(**kind, outcome="contended").inc()
                    await _send_again(broker, raw, message_type, contended)
                    return
                await _retry_or_give_up(
                    raw, message, error, attempt, kind, on_give_up, retry_backoff
                )
                return
            except PermanentError as error:
                # The reason may quote the data (a phone number): it is stored for lab staff,
                # the log gets only its kind.
                log.error("message.failed_permanently", error=type(error).__name__)
                MESSAGES_FAILED.labels(**kind, outcome="permanent").inc()
                await _give_up(raw, message, str(error), on_give_up)
                return
            except Exception as error:
                await _retry_or_give_up(
                    raw, message, error, attempt, kind, on_give_up, retry_backoff
                )
                return
            await raw.ack()
            HANDLING_SECONDS.labels(**kind).observe(time.perf_counter() - started)
            MESSAGES_HANDLED.labels(**kind).inc()


async def _handle(handler: Handler[M], message: M, may_send_again: bool) -> None:
    """Run the handler; a `ContendedError` goes up at once where this service may publish the
    message again (its broker user may write its key), else the handler runs again here (it
    is idempotent) up to `CONTENDED_MOST` times, holding the message meanwhile."""
    tries = 1
    while True:
        try:
            await handler(message)
            return
        except ContendedError:
            if may_send_again or tries >= CONTENDED_MOST:
                raise
            tries += 1
            log.warning("message.contended_waiting", tries=tries)
            await asyncio.sleep(CONTENDED_PAUSE_SECONDS)


async def _retry_or_give_up(
    raw: RabbitMessage,
    message: M,
    error: Exception,
    attempt: int,
    kind: dict[str, str],
    on_give_up: GiveUp[M],
    retry_backoff: float,
) -> None:
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


def _contended_count(raw: RabbitMessage) -> int:
    count = (raw.headers or {}).get(CONTENDED_HEADER, 0)
    return int(count) if isinstance(count, int | str) else 0


def _own_headers(raw: RabbitMessage) -> dict[str, Any]:
    # RabbitMQ's own count stays behind: the new copy starts with all its deliveries.
    return {k: v for k, v in (raw.headers or {}).items() if k != "x-delivery-count"}


async def _send_again(
    broker: RabbitBroker, raw: RabbitMessage, message_type: type[Message], contended: int
) -> None:
    """Publish the message again (confirmed) with how often it was contended, then ack this
    copy; a death in between leaves two copies, which idempotent handlers absorb."""
    await asyncio.sleep(CONTENDED_PAUSE_SECONDS)
    await broker.publish(
        raw.body,
        exchange=EXCHANGE,
        routing_key=message_type.routing_key,
        persist=True,
        mandatory=True,
        headers={**_own_headers(raw), CONTENDED_HEADER: contended},
        message_type=message_type.routing_key,
        correlation_id=raw.correlation_id,
        content_type=raw.content_type,
    )
    await raw.ack()


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
