"""Who may do what on the broker and in MongoDB, as computed, generated and deployed.

RabbitMQ matches permission regexes with PCRE; the ones here use only what Python's `re`
means the same way (anchors, groups, alternation, escapes, classes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from contracts import topology
from services.infra import broker_access, database_access
from services.infra.owners import OWNERS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "render", "convert", "notify", "gateway")


def allows(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def topic_write(principal: str, exchange: str) -> str:
    permissions = broker_access.permissions_for(principal)
    return next(t.write for t in permissions.topics if t.exchange == exchange)


def test_the_principals_are_every_service_and_the_lis() -> None:
    assert sorted(broker_access.principals()) == sorted([*SERVICES, "lis"])


def test_no_principal_may_configure_anything() -> None:
    for permissions in broker_access.all_permissions():
        assert permissions.configure == broker_access.NOTHING
        for name in (topology.EXCHANGE, topology.DEAD_LETTER_EXCHANGE, "render.report", "x"):
            assert not allows(permissions.configure, name)


def test_the_lis_may_publish_only_lis_family_intake_keys() -> None:
    keys = topic_write("lis", topology.EXCHANGE)
    for queue in topology.QUEUES:
        assert allows(keys, queue.routing_key) == (topology.LIS in queue.published_by), queue
    for future in ("ingest.hl7-message.v1", "ingest.fhir-bundle.v2", "ingest.lis-result.v1"):
        assert allows(keys, future)
    for refused in ("ingest.batch.v1", "ingest.lis-result", "xingest.lis-result.v1", "ingest.#"):
        assert not allows(keys, refused)
    assert topic_write("lis", topology.DEAD_LETTER_EXCHANGE) == broker_access.NOTHING


def test_the_lis_may_write_only_to_the_exchange_and_read_nothing() -> None:
    lis = broker_access.permissions_for("lis")
    assert allows(lis.write, topology.EXCHANGE)
    assert not allows(lis.write, topology.DEAD_LETTER_EXCHANGE)
    assert not allows(lis.write, "amq.default")  # no publishing straight into a queue
    for queue in topology.QUEUES:
        assert not allows(lis.read, queue.name) and not allows(lis.read, queue.dead_letter_queue)


def test_each_service_reads_exactly_the_queues_it_consumes() -> None:
    for service in SERVICES:
        read = broker_access.permissions_for(service).read
        keeper = service == topology.DEAD_LETTER_KEEPER
        for queue in topology.QUEUES:
            assert allows(read, queue.name) == (queue.consumer == service), (service, queue)
            # The gateway drains every dead-letter queue into the dashboard's list.
            assert allows(read, queue.dead_letter_queue) == keeper, (service, queue)


def test_each_service_publishes_exactly_the_keys_the_topology_says_it_publishes() -> None:
    for service in SERVICES:
        keys = topic_write(service, topology.EXCHANGE)
        keeper = service == topology.DEAD_LETTER_KEEPER  # replays under the original key
        for queue in topology.QUEUES:
            assert allows(keys, queue.routing_key) == (service in queue.published_by or keeper)
        dead_letter_keys = topic_write(service, topology.DEAD_LETTER_EXCHANGE)
        for queue in topology.QUEUES:
            assert allows(dead_letter_keys, queue.dead_letter_queue) == (queue.consumer == service)


def test_only_the_gateway_may_publish_sms_receipts_and_uploads() -> None:
    for key in ("notify.sms-receipt.v1", "ingest.batch.v1"):
        publishers = [
            p for p in broker_access.principals() if allows(topic_write(p, topology.EXCHANGE), key)
        ]
        assert publishers == ["gateway"]


def test_the_deployed_mongodb_script_is_the_generated_one() -> None:
    deployed = (ROOT / "deploy" / "mongodb" / "init-users.js").read_text()
    assert deployed == database_access.init_script(), (
        "run: resultflow database users-script > deploy/mongodb/init-users.js"
    )


def test_the_gateway_may_append_to_the_audit_trail_but_never_change_it() -> None:
    for service, grants in database_access.GRANTS.items():
        assert set(grants.get("audit", ())) <= {"find", "insert"}, service
    assert set(database_access.GRANTS["gateway"]["audit"]) == {"find", "insert"}


def test_no_service_may_remove_reports_batches_or_files() -> None:
    for service, grants in database_access.GRANTS.items():
        for collection in ("reports", "batches", "audit", "notifications", "fs.files", "fs.chunks"):
            assert "remove" not in grants.get(collection, ()), (service, collection)


def test_every_collection_with_an_owner_has_a_service_that_writes_it() -> None:
    writers = {
        collection
        for grants in database_access.GRANTS.values()
        for collection, actions in grants.items()
        if {"insert", "update"} & set(actions)
    }
    assert sorted(set(OWNERS) - writers) == []
    granted = {c for grants in database_access.GRANTS.values() for c in grants}
    assert sorted(granted - set(OWNERS) - {"fs.files", "fs.chunks"}) == [], "unknown collection"


def test_no_service_role_may_create_indexes() -> None:
    # A TTL index deletes documents: index creation is the setup job's alone.
    for grants in database_access.GRANTS.values():
        for actions in grants.values():
            assert "createIndex" not in actions and "dropIndex" not in actions


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def credentials(url: str) -> str:
    """The user name of a URL whose password is `${VARIABLE:?message}`."""
    return urlsplit(re.sub(r"\$\{[^}]*\}", "secret", url)).username or ""


def test_every_service_in_compose_uses_its_own_broker_and_database_user() -> None:
    services = compose()["services"]
    for service in SERVICES:
        environment = services[service]["environment"]
        assert credentials(environment["AMQP_URL"]) == broker_access.username(service)
        assert credentials(environment["MONGODB_URI"]) == database_access.username(service)
        assert f"RESULTFLOW_BROKER_PASSWORD_{service.upper()}" in environment["AMQP_URL"]
        assert f"MONGODB_PASSWORD_{service.upper()}" in environment["MONGODB_URI"]
        assert "authSource=admin" in environment["MONGODB_URI"]
        assert environment["RESULTFLOW_SETUP_ON_START"] == "false"
        assert services[service]["depends_on"]["setup"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_runs_mongodb_with_authentication_and_makes_the_users() -> None:
    services = compose()["services"]
    command = services["mongodb"]["command"]
    assert "--auth" in command and "--keyFile" in command
    assert "MONGO_INITDB_ROOT_PASSWORD" in services["mongodb"]["environment"]
    init = services["mongodb-init"]
    assert "./deploy/mongodb:/deploy:ro" in init["volumes"]
    for principal in [*SERVICES, database_access.SETUP]:
        assert database_access.password_variable(principal) in init["environment"]
    assert "init-users.js" in (ROOT / "deploy" / "mongodb" / "init.sh").read_text()


def test_compose_setup_declares_grants_every_principal_and_makes_the_indexes() -> None:
    setup = compose()["services"]["setup"]
    command = " ".join(setup["command"])
    for step in ("broker declare", "broker grant --management-url", "database indexes"):
        assert f"resultflow {step}" in command
    for principal in broker_access.principals():
        assert broker_access.password_variable(principal) in setup["environment"]
    assert credentials(setup["environment"]["MONGODB_URI"]) == "resultflow-setup"
