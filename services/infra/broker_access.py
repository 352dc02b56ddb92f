"""Who may do what on RabbitMQ, derived from `contracts.topology` alone (pure, no I/O).

One broker user per service and one for the lab's LIS. RabbitMQ checks three regexes per
user and virtual host (configure: declare/delete; write: publish to an exchange, bind a
queue; read: consume from a queue) and, per topic exchange, a regex of the routing keys the
user may publish under. Here:

- configure: nothing. `resultflow broker declare` declares the whole topology once, as the
  broker's administrator; services started with `RESULTFLOW_SETUP_ON_START=false` only check
  it exists (passive declares need no permission). A service that could configure could also
  delete another service's queue.
- write: the `resultflow` exchange, under the routing keys of the messages the principal
  publishes (`Queue.published_by`); a consumer also the dead-letter exchange, under its own
  queues' dead-letter keys (it parks a message that is not a valid contract there, with the
  reason in a header).
- read: the queues the principal consumes (`Queue.consumer`), nothing else.
- the LIS: publish only under `topology.LIS_ROUTING_KEYS`; it can neither read nor configure.
- the dead-letter keeper (the gateway) also reads every dead-letter queue and may publish
  under every routing key: staff replay a dead-lettered message to where it was going.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from contracts import topology

LIS = "lis"
NOTHING = "^$"  # a regex no resource name matches (RabbitMQ's own "no access")
USER_PREFIX = "resultflow-"


@dataclass(frozen=True)
class TopicPermission:
    """Routing keys a user may publish under (write) or bind with (read) on one exchange."""

    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class BrokerPermissions:
    principal: str
    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...]


def principals() -> tuple[str, ...]:
    """Every service named in the topology (consumer or publisher), then the LIS."""
    services = {queue.consumer for queue in topology.QUEUES}
    services |= {p for queue in topology.QUEUES for p in queue.published_by}
    services.discard(topology.LIS)
    return (*sorted(services), LIS)


def username(principal: str, prefix: str = USER_PREFIX) -> str:
    return f"{prefix}{principal}"


def exactly(names: Iterable[str]) -> str:
    """A regex matching exactly these names (and nothing when there are none)."""
    unique = sorted(set(names))
    if not unique:
        return NOTHING
    return "^(" + "|".join(re.escape(name) for name in unique) + ")$"


def permissions_for(principal: str) -> BrokerPermissions:
    if principal not in principals():
        raise ValueError(f"no broker principal {principal!r}; known: {', '.join(principals())}")
    if principal == LIS:
        return BrokerPermissions(
            principal=LIS,
            configure=NOTHING,
            write=exactly([topology.EXCHANGE]),
            read=NOTHING,
            topics=(
                TopicPermission(topology.EXCHANGE, f"^{topology.LIS_ROUTING_KEYS}$", NOTHING),
                TopicPermission(topology.DEAD_LETTER_EXCHANGE, NOTHING, NOTHING),
            ),
        )
    consumed = [queue for queue in topology.QUEUES if queue.consumer == principal]
    published = [queue for queue in topology.QUEUES if principal in queue.published_by]
    kept: list[str] = []
    if principal == topology.DEAD_LETTER_KEEPER:
        published = list(topology.QUEUES)  # a replay goes back under the original key
        kept = [queue.dead_letter_queue for queue in topology.QUEUES]
    exchanges = [topology.EXCHANGE] if published else []
    if consumed:
        exchanges.append(topology.DEAD_LETTER_EXCHANGE)
    return BrokerPermissions(
        principal=principal,
        configure=NOTHING,
        write=exactly(exchanges),
        read=exactly([*(queue.name for queue in consumed), *kept]),
        topics=(
            TopicPermission(
                topology.EXCHANGE, exactly(queue.routing_key for queue in published), NOTHING
            ),
            TopicPermission(
                topology.DEAD_LETTER_EXCHANGE,
                exactly(queue.dead_letter_queue for queue in consumed),
                NOTHING,
            ),
        ),
    )


def all_permissions() -> tuple[BrokerPermissions, ...]:
    return tuple(permissions_for(principal) for principal in principals())


def password_variable(principal: str) -> str:
    """The environment variable `resultflow broker grant` takes a principal's password from."""
    return f"RESULTFLOW_BROKER_PASSWORD_{principal.upper()}"
