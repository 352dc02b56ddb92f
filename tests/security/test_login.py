"""Signing in as staff: the second factor (TOTP), throttling per user, address and overall,
session lifetimes and rotation, `__Host-` cookies, the password screen and body limits.
Against the real gateway app on RabbitMQ and the MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from contracts.v1 import utcnow
from devtools.admin_client import AUTHENTICATOR
from services.gateway import accounts_logic
from services.gateway.accounts_logic import Limit
from services.gateway.accounts_store import UserError, create_user
from services.gateway.main import create_app
from services.gateway.permissions import Role
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD, csrf_from, log_in, report_document

SECRET = re.compile(r'id="mfa-secret"[^>]*>([A-Z2-7]+)<')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def gateway(
    make_resources: Callable[[str], Resources],
) -> AsyncIterator[Callable[..., Any]]:
    """Starts gateway apps with settings changed as asked; closes them at the end."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**settings: Any) -> TestClient[Any, Any]:
        resources = make_resources("gateway")
        resources.settings = resources.settings.model_copy(update=settings)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(resources)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def post_password(
    client: TestClient[Any, Any], username: str = "admin", password: str = PASSWORD, **headers: str
) -> Any:
    form = {
        "username": username,
        "password": password,
        "csrf_token": await csrf_from(client, "/login"),
    }
    return await client.post("/login", data=form, headers=headers)


async def log_out(client: TestClient[Any, Any], db: Database) -> None:
    session = await db.sessions.find_one({"stage": "done"})
    assert session
    await client.post("/logout", data={"csrf_token": session["csrf_token"]})


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no form on the page"
    return match.group(1)


# --- the second factor ---------------------------------------------------------------------


async def test_an_admin_sets_up_totp_at_first_login_and_then_signs_in_with_a_code(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "admin", PASSWORD)
    setup = await post_password(client)
    page = await setup.text()
    assert setup.url.path == "/login/mfa/setup"
    assert "<svg" in page  # the QR code, made here
    secret = SECRET.search(page)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    # Until the second factor is done, the password alone opens nothing.
    assert (await client.get("/", allow_redirects=False)).status == 303
    wrong = await client.post(
        "/login/mfa/setup", data={"code": "000000", "csrf_token": csrf_of(page)}
    )
    assert wrong.status == 401

    codes_page = await client.post(
        "/login/mfa/setup", data={"code": totp.now(), "csrf_token": csrf_of(page)}
    )
    codes = re.findall(r"<code>([a-z0-9-]{29})</code>", await codes_page.text())
    assert codes_page.status == 200 and len(set(codes)) == 10
    user = await db.users.find_one({"username": "admin"})
    assert user and user["mfa"]["secret"] == secret.group(1)
    assert not any(code in str(user) for code in codes)  # only hashes are kept
    done = await client.post(
        "/login/recovery-codes", data={"csrf_token": csrf_of(await codes_page.text())}
    )
    assert done.url.path == "/" and "Batches" in await done.text()
    await client.post("/logout", data={"csrf_token": csrf_of(await done.text())})

    # The next login asks for a code; the one just used is refused (used once only).
    asked = await post_password(client)
    assert asked.url.path == "/login/mfa"
    step = totp.timecode(utcnow())
    replay = await client.post(
        "/login/mfa",
        data={"code": totp.generate_otp(step), "csrf_token": csrf_of(await asked.text())},
    )
    assert replay.status == 401 and "not right" in await replay.text()
    good = await client.post(
        "/login/mfa",
        data={"code": totp.generate_otp(step + 1), "csrf_token": csrf_of(await replay.text())},
    )
    assert good.url.path == "/"
    await client.post("/logout", data={"csrf_token": csrf_of(await good.text())})

    # A recovery code works once.
    asked = await post_password(client)
    used = await client.post(
        "/login/mfa", data={"code": codes[0].upper(), "csrf_token": csrf_of(await asked.text())}
    )
    assert used.url.path == "/"
    await client.post("/logout", data={"csrf_token": csrf_of(await used.text())})
    asked = await post_password(client)
    again = await client.post(
        "/login/mfa", data={"code": codes[0], "csrf_token": csrf_of(await asked.text())}
    )
    assert again.status == 401
    actions = [e["action"] async for e in db.audit.find({"object": "admin"}).sort("seq", 1)]
    for expected in ("mfa.setup_failed", "mfa.enrolled", "mfa.succeeded", "mfa.failed", "logout"):
        assert expected in actions


async def test_a_viewer_signs_in_with_a_password_alone_unless_the_lab_asks_more(
    gateway: Callable[..., Any], db: Database
) -> None:
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    plain = await gateway()
    assert (await post_password(plain, "vera")).url.path == "/"
    strict = await gateway(mfa_required_roles="admin,reviewer,uploader,viewer")
    assert (await post_password(strict, "vera")).url.path == "/login/mfa/setup"


async def test_five_wrong_codes_end_the_half_done_login(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "admin", PASSWORD)
    assert (await log_in(client)).url.path == "/"  # sets up MFA (AUTHENTICATOR)
    await log_out(client, db)
    asked = await post_password(client)
    page = await asked.text()
    statuses = []
    for _ in range(5):
        wrong = await client.post(
            "/login/mfa", data={"code": "123456", "csrf_token": csrf_of(page)}
        )
        statuses.append(wrong.status)
        page = await wrong.text()
    assert statuses == [401, 401, 401, 401, 429]
    assert "Log in again" in page
    code = await AUTHENTICATOR.code("admin")
    late = await client.post("/login/mfa", data={"code": code, "csrf_token": "x"})
    assert late.url.path == "/login"


async def test_another_admin_resets_a_lost_second_factor(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "admin", PASSWORD)
    await create_user(db, "alice", PASSWORD)
    assert (await log_in(client, "alice")).url.path == "/"
    alice_sessions = await db.sessions.count_documents({"username": "alice"})
    assert alice_sessions == 1
    other = await gateway()
    page = await (await log_in(other, "admin")).text()
    reset = await other.post("/users/alice/reset-mfa", data={"csrf_token": csrf_of(page)})
    assert reset.status == 200 and "second factor was removed" in await reset.text()
    alice = await db.users.find_one({"username": "alice"})
    assert alice and alice["mfa"] is None
    # Her sessions ended: she signs in again and sets up a new second factor.
    assert (await client.get("/", allow_redirects=False)).status == 303
    assert (await post_password(client, "alice")).url.path == "/login/mfa/setup"
    entry = await db.audit.find_one({"action": "user.reset_mfa"})
    assert entry and (entry["actor"], entry["object"]) == ("admin:admin", "alice")


# --- throttling ----------------------------------------------------------------------------


async def test_one_address_guessing_many_usernames_is_stopped_with_retry_after(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "admin", PASSWORD, Role.VIEWER)
    statuses = [
        (await post_password(client, f"user{n}", "wrong password!!")).status for n in range(31)
    ]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429
    refused = await post_password(client)  # even the right password, from this address
    assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 900


async def test_spraying_from_many_addresses_locks_a_username_but_not_for_its_own_user(
    gateway: Callable[..., Any], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        accounts_logic, "USER", Limit("user", 5, timedelta(hours=1), timedelta(minutes=15))
    )
    client = await gateway(trusted_proxies="127.0.0.1")  # addresses from X-Forwarded-For
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    home = {"X-Forwarded-For": "10.0.0.1"}
    assert (await post_password(client, "vera", **home)).url.path == "/"  # a known address
    await log_out(client, db)
    for n in range(5):  # five attackers, one guess each
        wrong = await post_password(
            client, "vera", "wrong password!!", **{"X-Forwarded-For": f"10.9.0.{n}"}
        )
        assert wrong.status == 401
    stranger = await post_password(client, "vera", **{"X-Forwarded-For": "10.9.9.9"})
    assert stranger.status == 429
    assert (await post_password(client, "vera", **home)).url.path == "/"
    throttled = await db.audit.find_one({"action": "login.throttled"})
    assert throttled and throttled["client"] == "10.9.9.9"


async def test_a_flood_of_failures_slows_every_login_for_a_minute(
    gateway: Callable[..., Any], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        accounts_logic, "EVERYONE", Limit("everyone", 8, timedelta(minutes=1), timedelta(minutes=1))
    )
    client = await gateway(trusted_proxies="127.0.0.1")
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    for n in range(8):
        wrong = await post_password(
            client, f"u{n}", "wrong password!!", **{"X-Forwarded-For": f"10.1.0.{n}"}
        )
        assert wrong.status == 401
    refused = await post_password(client, "vera", **{"X-Forwarded-For": "10.2.0.1"})
    assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 60


# --- sessions ------------------------------------------------------------------------------


async def test_a_session_ends_after_thirty_idle_minutes_and_twelve_hours_in_all(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    assert (await log_in(client, "vera")).url.path == "/"
    session = await db.sessions.find_one({"username": "vera"})
    assert session and session["expires_at"] - session["created_at"] == timedelta(hours=12)
    await db.sessions.update_one(
        {"_id": session["_id"]}, {"$set": {"last_seen_at": utcnow() - timedelta(minutes=29)}}
    )
    assert (await client.get("/", allow_redirects=False)).status == 200  # and marks it seen
    await db.sessions.update_one(
        {"_id": session["_id"]}, {"$set": {"last_seen_at": utcnow() - timedelta(minutes=31)}}
    )
    assert (await client.get("/", allow_redirects=False)).status == 303
    assert (await log_in(client, "vera")).url.path == "/"
    await db.sessions.update_one(
        {"username": "vera"}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_login_issues_a_new_session_and_ends_the_one_the_browser_had(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    first = await log_in(client, "vera")
    before = first.history[0].cookies["rf_session"].value
    # The same browser signs in again (a second tab's login form, say).
    client.session.cookie_jar.update_cookies({"rf_login_csrf": "t" * 43})
    form = {"username": "vera", "password": PASSWORD, "csrf_token": "t" * 43}
    second = await client.post("/login", data=form)
    after = second.history[0].cookies["rf_session"].value
    assert second.url.path == "/" and before != after
    assert await db.sessions.count_documents({"username": "vera"}) == 1


async def test_a_role_change_ends_the_users_sessions(
    gateway: Callable[..., Any], db: Database
) -> None:
    admin, vera = await gateway(), await gateway()
    await create_user(db, "admin", PASSWORD)
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    assert (await log_in(vera, "vera")).url.path == "/"
    page = await (await log_in(admin)).text()
    changed = await admin.post(
        "/users/vera/set-role", data={"role": "uploader", "csrf_token": csrf_of(page)}
    )
    assert "vera is now uploader" in await changed.text()
    assert (await vera.get("/", allow_redirects=False)).status == 303


async def test_a_user_sees_where_they_are_signed_in_and_signs_out_everywhere_else(
    gateway: Callable[..., Any], db: Database
) -> None:
    desk, phone = await gateway(), await gateway()
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    assert (await log_in(phone, "vera")).url.path == "/"
    await log_in(desk, "vera")
    page = await (await desk.get("/account")).text()
    assert page.count("127.0.0.1") == 2 and "(this one)" in page
    ended = await desk.post("/account/sessions/end-others", data={"csrf_token": csrf_of(page)})
    assert "Signed out 1 other session" in await ended.text()
    assert (await phone.get("/", allow_redirects=False)).status == 303
    assert (await desk.get("/", allow_redirects=False)).status == 200
    entry = await db.audit.find_one({"action": "user.sessions_ended"})
    assert entry and entry["detail"]["sessions_ended"] == 1


async def test_over_https_the_session_cookie_is_a_host_cookie(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway(cookie_secure=True)
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    login_page = await client.get("/login")
    csrf_cookie = login_page.cookies["__Host-rf_login_csrf"]
    assert csrf_cookie["secure"] and csrf_cookie["path"] == "/" and not csrf_cookie["domain"]
    form = {
        "username": "vera",
        "password": PASSWORD,
        "csrf_token": csrf_of(await login_page.text()),
    }
    # The test client speaks plain HTTP, so the browser-side jar would drop Secure cookies:
    # send the login CSRF cookie by hand and read the answer's Set-Cookie.
    response = await client.post(
        "/login",
        data=form,
        allow_redirects=False,
        headers={"Cookie": f"__Host-rf_login_csrf={csrf_cookie.value}"},
    )
    assert response.status == 303
    session = response.cookies["__Host-rf_session"]
    assert session["secure"] and session["httponly"] and session["path"] == "/"
    assert "rf_session" not in response.cookies


async def test_the_live_counts_stream_ends_when_its_session_does(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    await db.batches.insert_one(
        {"_id": "b1", "status": "ingested", "filename": "a.xlsx", "uploaded_by": "x",
         "reports_created": 1, "created_at": utcnow(), "lab_id": "demo-lab"}
    )  # fmt: skip
    await db.reports.insert_one(report_document(batch_id="b1"))
    assert (await log_in(client, "vera")).url.path == "/"
    stream = await client.get("/batches/b1/events")
    assert stream.status == 200
    assert b"event: counts" in await stream.content.readuntil(b"\n\n")
    await db.sessions.delete_many({"username": "vera"})  # logged out elsewhere, or timed out

    async def read_to_end() -> None:
        while await stream.content.readany():
            pass

    await asyncio.wait_for(read_to_end(), timeout=10)


# --- passwords -----------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["passwordpassword", "Qwertyuiop123", "vera-is-my-name"])
async def test_a_breached_common_or_name_based_password_is_refused(
    db: Database, password: str
) -> None:
    with pytest.raises(UserError, match=r"breach|username"):
        await create_user(db, "vera", password)


def test_the_bundled_password_list_is_large() -> None:
    import gzip
    from importlib import resources

    data = resources.files("services.gateway").joinpath("data/common-passwords.txt.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", errors="replace") as text:
        assert sum(1 for _ in text) >= 100_000


async def test_a_weaker_argon2_hash_is_replaced_at_login(
    gateway: Callable[..., Any], db: Database
) -> None:
    client = await gateway()
    await create_user(db, "vera", PASSWORD, Role.VIEWER)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await db.users.update_one({"username": "vera"}, {"$set": {"password_hash": weak}})
    assert (await log_in(client, "vera")).url.path == "/"
    user = await db.users.find_one({"username": "vera"})
    assert user and user["password_hash"] != weak
    assert not PasswordHasher().check_needs_rehash(user["password_hash"])


# --- request bodies ------------------------------------------------------------------------


async def test_a_large_login_or_webhook_body_is_refused_before_it_is_read(
    gateway: Callable[..., Any],
) -> None:
    client = await gateway()
    big = {"username": "x" * 20_000, "password": "y", "csrf_token": "z"}
    assert (await client.post("/login", data=big)).status == 413
    assert (await client.post("/webhooks/twilio/status", data=big)).status == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield b"username=a&password=b"

    assert (await client.post("/login", data=chunks())).status == 411
