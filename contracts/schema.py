"""JSON Schema of every message, the AsyncAPI document of the topology (as dicts), and the
table of who publishes and who consumes each message (markdown, for docs/)."""

from __future__ import annotations

from typing import Any

from contracts import topology, v1


def json_schemas() -> dict[str, dict[str, Any]]:
    """Routing key -> JSON Schema of the message published under it."""
    return {m.routing_key: m.model_json_schema(mode="validation") for m in v1.MESSAGES}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per routing key on the `resultflow` exchange."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for queue in topology.QUEUES:
        message = queue.message
        name = message.__name__
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (message.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": message.model_json_schema(
                mode="validation", ref_template="#/components/schemas/{model}"
            ),
            "bindings": {"amqp": {"messageType": message.routing_key, "bindingVersion": "0.3.0"}},
        }
        channels[queue.name] = {
            "address": message.routing_key,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": topology.EXCHANGE,
                        "type": topology.EXCHANGE_TYPE,
                        "durable": True,
                    },
                    "queue": {"name": queue.name, "durable": True, "exclusive": False},
                    "bindingVersion": "0.3.0",
                }
            },
            "description": (
                f"Consumed by `{queue.consumer}` from quorum queue `{queue.name}` "
                f"(x-delivery-limit {topology.DELIVERY_LIMIT}, dead letters to "
                f"`{queue.dead_letter_queue}`). Publish persistent, with publisher confirms."
            ),
        }
        operations[f"receive{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{queue.name}"},
            "summary": f"{queue.consumer} consumes {name}",
        }
    schemas: dict[str, Any] = {}
    for message in v1.MESSAGES:
        schemas.update(
            message.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {})
        )
    for message_doc in messages.values():
        message_doc["payload"].pop("$defs", None)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ResultFlow messages",
            "version": v1.VERSION,
            "description": (
                "Messages between ResultFlow services and from a lab's LIS. An LIS publishes "
                "`IngestLisResult` to the topic exchange `resultflow` with routing key "
                f"`{v1.IngestLisResult.routing_key}`, content type application/json, "
                "delivery mode 2 (persistent)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def consumers_table() -> str:
    """Markdown: every message, who publishes it, which service consumes it from which queue."""
    lines = [
        "| message | routing key | published by | consumed by | queue | dead letters |",
        "|---|---|---|---|---|---|",
    ]
    for queue in topology.QUEUES:
        lines.append(
            f"| `{queue.message.__name__}` | `{queue.routing_key}` | "
            f"{', '.join(queue.published_by)} | {queue.consumer} | `{queue.name}` | "
            f"`{queue.dead_letter_queue}` |"
        )
    return "\n".join(lines) + "\n"
