"""Applies `broker_access` to a RabbitMQ node: users, passwords, permissions, topic permissions.

Two ways in, the same operations: `rabbitmqctl` on the broker's own machine (a local
RabbitMQ, where the management plugin may be off), and the management HTTP API (the
`rabbitmq:3.13-management` container of compose.yaml, reached from the setup job). Every
operation is idempotent: granting again updates passwords and permissions in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote

import aiohttp

from services.infra.broker_access import BrokerPermissions, all_permissions, username

# The management plugin starts a little after the AMQP port answers.
MANAGEMENT_WAIT_SECONDS = 60.0


class BrokerAdminError(RuntimeError):
    pass


class BrokerAdmin(Protocol):
    async def ensure_vhost(self, vhost: str) -> None: ...

    async def put_user(self, name: str, password: str) -> None: ...

    async def set_permissions(
        self, vhost: str, name: str, permissions: BrokerPermissions
    ) -> None: ...

    async def delete_user(self, name: str) -> None: ...


async def grant(
    admin: BrokerAdmin,
    vhost: str,
    passwords: Mapping[str, str],
    prefix: str,
    only: tuple[str, ...] = (),
) -> list[str]:
    """Create or update each principal's user with its password and permissions on `vhost`;
    returns the user names."""
    await admin.ensure_vhost(vhost)
    chosen = [p for p in all_permissions() if not only or p.principal in only]

    async def put(permissions: BrokerPermissions) -> str:
        name = username(permissions.principal, prefix)
        await admin.put_user(name, passwords[permissions.principal])
        await admin.set_permissions(vhost, name, permissions)
        return name

    # Side by side: each `rabbitmqctl` call costs half a second of VM start.
    return list(await asyncio.gather(*(put(permissions) for permissions in chosen)))


class Rabbitmqctl:
    """`rabbitmqctl` on this machine (root, or a member of the rabbitmq group)."""

    def __init__(self, executable: str = "rabbitmqctl") -> None:
        self._executable = executable

    async def _run(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            self._executable,
            "--quiet",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        # Passwords go through stdin, never the command line (visible in `ps`).
        output, _ = await process.communicate(stdin.encode() + b"\n" if stdin else None)
        return process.returncode or 0, output.decode(errors="replace")

    async def _check(self, *args: str, stdin: str | None = None) -> None:
        code, output = await self._run(*args, stdin=stdin)
        if code != 0:
            raise BrokerAdminError(f"rabbitmqctl {args[0]} failed ({code}): {output.strip()}")

    async def ensure_vhost(self, vhost: str) -> None:
        await self._check("add_vhost", vhost)  # succeeds when it exists already

    async def put_user(self, name: str, password: str) -> None:
        code, output = await self._run("add_user", name, stdin=password)
        if code != 0 and "already exists" in output:
            await self._check("change_password", name, stdin=password)
        elif code != 0:
            raise BrokerAdminError(f"rabbitmqctl add_user failed ({code}): {output.strip()}")

    async def set_permissions(self, vhost: str, name: str, permissions: BrokerPermissions) -> None:
        p = permissions
        await self._check("set_permissions", "-p", vhost, name, p.configure, p.write, p.read)
        for topic in p.topics:
            await self._check(
                "set_topic_permissions", "-p", vhost, name, topic.exchange, topic.write, topic.read
            )

    async def delete_user(self, name: str) -> None:
        await self._check("delete_user", name)


class ManagementApi:
    """The RabbitMQ management plugin's HTTP API, as an administrator."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}

    async def _put(self, path: str, body: Mapping[str, str]) -> None:
        await self._request("PUT", path, body)

    async def _request(self, method: str, path: str, body: Mapping[str, str] | None) -> None:
        url = f"{self._base_url}/api/{path}"
        deadline = asyncio.get_running_loop().time() + MANAGEMENT_WAIT_SECONDS
        async with aiohttp.ClientSession(headers=self._headers) as session:
            while True:
                try:
                    async with session.request(method, url, json=body) as response:
                        if response.status >= 400:
                            text = (await response.text())[:300]
                            raise BrokerAdminError(
                                f"{method} {path}: HTTP {response.status} {text}"
                            )
                        return
                except aiohttp.ClientConnectionError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(1)

    async def ensure_vhost(self, vhost: str) -> None:
        await self._put(f"vhosts/{quote(vhost, safe='')}", {})

    async def put_user(self, name: str, password: str) -> None:
        # No tags: these users cannot sign in to the management UI.
        await self._put(f"users/{quote(name, safe='')}", {"password": password, "tags": ""})

    async def set_permissions(self, vhost: str, name: str, permissions: BrokerPermissions) -> None:
        where = f"{quote(vhost, safe='')}/{quote(name, safe='')}"
        p = permissions
        await self._put(
            f"permissions/{where}", {"configure": p.configure, "write": p.write, "read": p.read}
        )
        for topic in p.topics:
            await self._put(
                f"topic-permissions/{where}",
                {"exchange": topic.exchange, "write": topic.write, "read": topic.read},
            )

    async def delete_user(self, name: str) -> None:
        await self._request("DELETE", f"users/{quote(name, safe='')}", None)
