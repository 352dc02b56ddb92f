import json
from pathlib import Path

from contracts import topology, v1
from contracts.schema import asyncapi
from services.cli import main


def test_every_message_carries_correlation_id_time_and_a_versioned_routing_key() -> None:
    for message in v1.MESSAGES:
        fields = message.model_fields
        assert {"correlation_id", "created_at"} <= set(fields)
        assert {"report_id", "batch_id", "message_id", "provider_message_id"} & set(fields)
        assert message.routing_key.endswith(".v1")


def test_every_queue_is_quorum_with_a_delivery_limit_and_its_own_dead_letter_queue() -> None:
    assert {q.message for q in topology.QUEUES} == set(v1.MESSAGES)
    for queue in topology.QUEUES:
        assert queue.arguments["x-queue-type"] == "quorum"
        assert queue.arguments["x-delivery-limit"] == topology.DELIVERY_LIMIT
        assert queue.arguments["x-dead-letter-exchange"] == topology.DEAD_LETTER_EXCHANGE
        assert queue.arguments["x-dead-letter-routing-key"] == f"{queue.name}.dlq"


def test_unknown_fields_are_ignored_so_additive_changes_stay_v1() -> None:
    message = v1.RenderReport.model_validate({"report_id": "r", "correlation_id": "c", "new": 1})
    assert message.report_id == "r"


def test_export_writes_a_schema_per_message_and_an_asyncapi_document(tmp_path: Path) -> None:
    main(["contracts", "export", str(tmp_path)])
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{m.routing_key}.schema.json" for m in v1.MESSAGES} | {"asyncapi.json"}
    lis = json.loads((tmp_path / "ingest.lis-result.v1.schema.json").read_text())
    assert {"message_id", "accession", "patient", "results"} <= set(lis["required"])


def test_asyncapi_references_all_resolve() -> None:
    document = asyncapi()
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = document
        for key in ref.split("/"):
            node = node[key]
    assert document["channels"]["ingest.lis-result"]["address"] == "ingest.lis-result.v1"


def test_retries_back_off_doubling_up_to_half_a_minute() -> None:
    from services.infra.consumer import retry_delay

    assert [retry_delay(n, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(10, 1.0) == 30.0
