"""Dead letters for staff: the keeper that drains every `<queue>.dlq` into `dead_letters`,
and the decisions on them (replay, replay all, discard), the same for the dashboard, the
admin API and `resultflow dead-letters`; each decision is audited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from faststream import AckPolicy
from faststream.rabbit import RabbitMessage, RabbitQueue
from faststream.rabbit.schemas import QueueType

from contracts import topology
from contracts.v1 import utcnow
from services.gateway.actions import ActionRefused
from services.infra.audit import Audit, staff
from services.infra.broker import EXCHANGE
from services.infra.dead_letters import (
    DeadLetters,
    DeadLetterState,
    dead_letter_from,
    replay_headers,
)
from services.infra.documents import AuditOutcome
from services.infra.service import Resources

log = structlog.get_logger()


def setup_dead_letter_keeper(resources: Resources) -> None:
    """Consume every dead-letter queue: store the message, then acknowledge it."""
    store = DeadLetters(resources.db)
    declare = resources.settings.setup_on_start
    for queue in topology.QUEUES:
        dead_letter_queue = RabbitQueue(  # type: ignore[call-overload]
            queue.dead_letter_queue,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=topology.DEAD_LETTER_QUEUE_ARGUMENTS,
            declare=declare,
        )
        keep = _keeper(store, queue.dead_letter_queue)
        resources.broker.subscriber(dead_letter_queue, ack_policy=AckPolicy.MANUAL)(keep)


def _keeper(store: DeadLetters, name: str) -> Callable[[RabbitMessage], Awaitable[None]]:
    async def keep(raw: RabbitMessage) -> None:
        message = raw.raw_message
        letter = dead_letter_from(
            name,
            raw.body,
            dict(message.headers or {}),
            message.message_id,
            message.correlation_id,
            utcnow(),
        )
        try:
            await store.keep(letter)
        except Exception:
            log.exception("dead_letter.keep_failed", queue=name)
            await asyncio.sleep(1)
            await raw.nack(requeue=True)
            return
        log.warning("dead_letter.kept", queue=letter["queue"], reason=letter["reason"][:200])
        await raw.ack()

    return keep


class DeadLetterActions:
    def __init__(self, resources: Resources) -> None:
        self._broker = resources.broker
        self._store = DeadLetters(resources.db)
        self._audit = Audit(resources.db)

    async def replay(self, letter_id: str, user: str, role: str) -> None:
        """Send a dead letter back to its queue, under its routing key, once."""
        letter = await self._store.claim(letter_id, DeadLetterState.REPLAYED, user)
        if letter is None:
            raise await self._refusal(letter_id)
        if not letter["routing_key"]:
            await self._store.unclaim(letter_id)
            raise ActionRefused(409, "Its queue is not one of ours: it cannot be replayed.")
        try:
            await self._broker.publish(
                letter["body"].encode(),
                exchange=EXCHANGE,
                routing_key=letter["routing_key"],
                persist=True,
                mandatory=True,
                headers=replay_headers(letter),
                message_id=letter["message_id"],
                correlation_id=letter["correlation_id"],
                content_type="application/json",
            )
        except Exception:
            await self._store.unclaim(letter_id)  # it waits again; nothing was sent
            raise
        await self._audited(user, role, "dead_letter.replayed", letter_id, letter["report_id"])

    async def replay_all(self, queue: str | None, user: str, role: str) -> int:
        done = 0
        for letter_id in await self._store.waiting_ids(queue):
            try:
                await self.replay(letter_id, user, role)
                done += 1
            except ActionRefused:
                continue  # decided meanwhile by someone else
        return done

    async def discard(self, letter_id: str, user: str, role: str, reason: str) -> None:
        if not reason.strip():
            raise ActionRefused(400, "Say why it is discarded.")
        letter = await self._store.claim(
            letter_id, DeadLetterState.DISCARDED, user, reason.strip()[:500]
        )
        if letter is None:
            raise await self._refusal(letter_id)
        await self._audited(
            user, role, "dead_letter.discarded", letter_id, letter["report_id"], reason
        )

    async def _refusal(self, letter_id: str) -> ActionRefused:
        found = await self._store.get(letter_id)
        if found is None:
            return ActionRefused(404, "There is no such dead letter.")
        return ActionRefused(409, f"It was already {found['state']}.")

    async def _audited(
        self,
        user: str,
        role: str,
        action: str,
        letter_id: str,
        report_id: str | None,
        reason: str = "",
    ) -> None:
        await self._audit.write(
            staff(user),
            action,
            report_id,
            {"reason": reason} if reason else {},
            role=role,
            outcome=AuditOutcome.SUCCESS,
            object=letter_id,
        )
