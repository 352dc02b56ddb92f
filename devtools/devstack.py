"""`resultflow run`: the whole system on this machine with its embedded defaults.

Starts the MongoDB-protocol server (unless MONGODB_URI is set), every service as its own
process, makes the first admin, uploads a demo batch through the gateway like a person
would, and prints where to look. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import time
from pathlib import Path

from devtools.admin_client import AdminClient, wait_for_batch
from devtools.demo import demo_sheet
from devtools.launcher import Stack, mongodb_server
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.permissions import Role
from services.infra.database import connect, ensure_indexes
from services.infra.process_registry import reap
from services.infra.settings import Settings

EXAMPLE_SHEET = Path(__file__).resolve().parent.parent / "examples" / "results-20-patients.xlsx"


def admin_password(var: Path) -> tuple[str, bool]:
    """The demo admin's password, made once and kept in var/ (mode 600)."""
    path = var / "admin-password"
    if path.exists():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password, True


DEMO_SYSTEM = "demo-lis"  # the account the demo batch is uploaded with


def metrics_token(var: Path) -> str:
    """The bearer token for /readyz and /metrics, made once and kept in var/ (mode 600)."""
    path = var / "metrics-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


async def _prepare_and_demo(settings: Settings, var: Path, stack: Stack, demo: bool) -> None:
    await stack.wait_ready()
    password, new = admin_password(var)
    client, db = connect(settings)
    try:
        await ensure_indexes(db)
        if new or not await db.users.find_one({"username": "admin"}):
            await db.users.delete_many({"username": "admin"})
            await create_user(db, "admin", password)
        print(f"\nDashboard:   {settings.public_base_url}/   (admin / {password})")
        print(f"Example sheet to upload: {EXAMPLE_SHEET}")
        metrics = f"{settings.public_base_url}/metrics"
        print(f"Metrics:     {metrics}   (bearer token: {var / 'metrics-token'})")
        print("Processes:   resultflow status   (each one's health and metrics URL, as JSON)")
        if not demo:
            return
        # The demo sheet comes in as a lab system's would (an API token), so that the admin's
        # first sign-in, and the second factor it sets up, is the person's own.
        if not await db.users.find_one({"username": DEMO_SYSTEM}):
            await create_user(db, DEMO_SYSTEM, secrets.token_urlsafe(24), Role.LIS)
        token_id, token = await ApiTokens(db).create(DEMO_SYSTEM, "demo batch")
        uploader = AdminClient(settings.public_base_url)
        try:
            sheet = demo_sheet(20, sample_date=None)
            batch_id = await uploader.upload_as_system(token, "demo-results.xlsx", sheet)
            print(f"Demo batch:  {settings.public_base_url}/batches/{batch_id}")
        finally:
            await uploader.close()
            await ApiTokens(db).revoke(token_id)
        await wait_for_batch(db, batch_id, timeout=300)
        sms = await db.outbox.find_one(sort=[("sent_at", -1)])
        if sms is not None:
            link = re.search(r"https?://\S+", sms["body"])
            report = await db.reports.find_one({"patient.phone": sms["to"]})
            if link and report:
                print(f"Patient link: {link.group(0)}")
                print(f"  date of birth to enter: {report['patient']['date_of_birth']}")
        print(f"SMS outbox:  {settings.public_base_url}/outbox\nLogs:        {stack.log_dir}")
        print("Press Ctrl-C to stop.\n")
    finally:
        await client.close()


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_everything(var: Path, demo: bool = True) -> None:
    # Ctrl-C, a closed terminal or a plain `kill` all stop every process this started.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    var = var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack_of_things:
        settings = Settings()
        if not settings.metrics_token:
            settings = settings.model_copy(update={"metrics_token": metrics_token(var)})
        # Whatever a killed earlier run left (its services, its database server) goes first.
        for record in reap(settings.work_dir):
            print(f"stopped {record.name} (pid {record.pid}), left by an earlier run")
        if "MONGODB_URI" not in os.environ:
            storage, work_dir = var / "mongodb", settings.work_dir
            uri = stack_of_things.enter_context(mongodb_server(storage, 27018, work_dir))
            settings = settings.model_copy(update={"mongodb_uri": uri})
        stack = stack_of_things.enter_context(Stack(settings, var / "logs"))
        try:
            asyncio.run(_prepare_and_demo(settings, var, stack, demo))
            while True:
                stack.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            print("stopping…")
