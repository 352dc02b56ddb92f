"""Dead letters, from RabbitMQ to a person: the gateway keeps every dead-lettered message,
shows it with why and for what, and replays or discards it (audited), on the page, through
the API and from the command line. Against the real RabbitMQ and MongoDB-protocol server."""

from __future__ import annotations

import io
import json
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from contracts import topology
from contracts.v1 import RenderReport
from services.cli import main
from services.gateway.accounts_store import ApiTokens, create_user
from services.infra.database import Database
from services.infra.settings import Settings
from tests.support import PASSWORD, browser_log_in, chromium, drain, eventually


async def rejected_render_command(amqp_url: str, report_id: str) -> RenderReport:
    """A render command a worker gave up on: RabbitMQ dead-letters it (reason `rejected`)."""
    command = RenderReport(report_id=report_id, correlation_id=f"c-{report_id}")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE)
        await exchange.publish(
            aio_pika.Message(command.model_dump_json().encode(), message_id=f"m-{report_id}"),
            command.routing_key,
            mandatory=True,
        )
        queue = await channel.get_queue("render.report")
        message = await queue.get(no_ack=False)
        assert message is not None
        await message.reject(requeue=False)
    return command


async def kept(db: Database, count: int) -> list[dict[str, Any]]:
    async def all_kept() -> list[dict[str, Any]] | None:
        rows = await db.dead_letters.find().to_list()
        return rows if len(rows) >= count else None

    return await eventually(all_kept)


async def test_a_dead_lettered_command_is_kept_listed_and_replayed_once(
    client: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin")
    auth = {"Authorization": f"Bearer {token}"}
    command = await rejected_render_command(amqp_url, "r-1")
    [letter] = await kept(db, 1)
    assert await drain(amqp_url, "render.report.dlq") == []  # taken off the queue once kept

    listed = await (await client.get("/api/v1/dead-letters", headers=auth)).json()
    [item] = listed["items"]
    assert (item["queue"], item["report_id"], item["state"]) == ("render.report", "r-1", "dead")
    assert "gave up" in item["reason"] and listed["counts"] == {"render.report": 1}

    replay = await client.post(f"/api/v1/dead-letters/{item['id']}/replay", json={}, headers=auth)
    assert replay.status == 200 and (await replay.json())["state"] == "replayed"
    [again] = await drain(amqp_url, "render.report")
    assert again["report_id"] == "r-1" and again["correlation_id"] == command.correlation_id
    twice = await client.post(f"/api/v1/dead-letters/{item['id']}/replay", json={}, headers=auth)
    assert twice.status == 409 and "already replayed" in (await twice.json())["detail"]
    assert await drain(amqp_url, "render.report") == []
    entry = await db.audit.find_one({"action": "dead_letter.replayed"})
    assert entry and (entry["object"], entry["report_id"]) == (letter["_id"], "r-1")


async def test_discarding_needs_a_reason_and_is_audited(
    client: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin")
    auth = {"Authorization": f"Bearer {token}"}
    await rejected_render_command(amqp_url, "r-2")
    [letter] = await kept(db, 1)
    url = f"/api/v1/dead-letters/{letter['_id']}/discard"
    assert (await client.post(url, json={}, headers=auth)).status == 400
    done = await client.post(url, json={"reason": "duplicate of r-1"}, headers=auth)
    assert (await done.json())["decision"] == "duplicate of r-1"
    assert (await client.post("/api/v1/dead-letters/nope/discard", json={"reason": "x"},
                              headers=auth)).status == 404  # fmt: skip
    entry = await db.audit.find_one({"action": "dead_letter.discarded"})
    assert entry and entry["detail"]["reason"] == "duplicate of r-1"


async def test_the_page_shows_dead_letters_and_replays_them_all(
    client: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    await create_user(db, "admin", PASSWORD)
    for report_id in ("r-3", "r-4"):
        await rejected_render_command(amqp_url, report_id)
    await kept(db, 2)
    base_url = str(client.make_url("")).rstrip("/")
    async with chromium() as browser:
        page = await browser.new_page()
        await browser_log_in(page, base_url)
        assert "2 dead letter(s) wait" in await page.inner_text("#dead-letter-summary")
        await page.click("#dead-letter-summary >> text=2 dead")
        assert await page.locator("tbody tr").count() == 2
        assert await page.text_content("#count-render\\.report") == "2"
        await page.click("button:has-text('Replay all')")
        assert "2 dead letter(s) sent back" in await page.inner_text("[role=status]")
    assert sorted(m["report_id"] for m in await drain(amqp_url, "render.report")) == ["r-3", "r-4"]


@pytest.mark.usefixtures("cli_env")
def test_operators_list_and_replay_dead_letters_from_the_command_line(
    settings: Settings,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](settings.mongodb_uri) as mongo:
        mongo[settings.mongodb_database].dead_letters.insert_one(
            {"_id": "dl-1", "queue": "render.report", "routing_key": "render.report.v1",
             "body": RenderReport(report_id="r-9", correlation_id="c-9").model_dump_json(),
             "headers": {}, "reason": "delivered 5 times without success", "deaths": 1,
             "state": "dead", "report_id": "r-9", "batch_id": None, "message_id": "m-9",
             "correlation_id": "c-9"}
        )  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    main(["dead-letters", "list"])
    main(["dead-letters", "replay", "dl-1", "--as", "olga"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["_id"] == "dl-1" and lines[1] == {"id": "dl-1", "state": "replayed"}
    [message] = asyncio.run(drain(amqp_url, "render.report"))
    assert message["report_id"] == "r-9"
