from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.faults.rabbit_node import RabbitNode


@pytest.fixture(scope="module")
async def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RabbitNode]:
    """A RabbitMQ node of this test module's own: restarting, freezing or alarming it never
    touches the shared broker."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    seconds = await node.start()
    print(f"\ntest-owned RabbitMQ node {node.name} started in {seconds:.1f} s")
    try:
        yield node
    finally:
        if node.process is not None and node.process.poll() is None:
            node.kill()  # its data is thrown away: no need to wait for a clean stop
