"""The HL7 v2 door of ingest: an MLLP listener. Each ORU^R01 is mapped (`services.ingest.hl7`)
to `IngestLisResult` messages, published persistent and confirmed, and only then answered
with a commit ACK `AA`; a message that cannot be used gets `AE` or `AR` with MSA-3 and ERR
saying what and where, and one that could not be published now gets `AE` (send it again).
Nothing patient-identifying is logged: the control id, the ACK code and the field at fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import hl7.mllp
import structlog

from contracts.v1 import Message
from services.ingest import hl7 as mapping

log = structlog.get_logger()

MAX_MESSAGE_BYTES = 1024 * 1024
Publish = Callable[[Message], Awaitable[None]]


class MllpListener:
    def __init__(self, publish: Publish, lab_id: str, region: str) -> None:
        self._publish = publish
        self._lab_id = lab_id
        self._region = region

    async def start(self, host: str, port: int) -> asyncio.Server:
        server: asyncio.Server = await hl7.mllp.start_hl7_server(
            self.serve, host, port, limit=MAX_MESSAGE_BYTES
        )
        return server

    async def serve(
        self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter
    ) -> None:
        """One LIS connection: message after message, each answered before the next is read."""
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the LIS hung up (between messages or mid-block)
                except hl7.mllp.InvalidBlockError:
                    log.warning("mllp.invalid_block")
                    error = mapping.Hl7Error("not an MLLP block (no <VT> start)", ack="AR")
                    writer.writeblock(mapping.ack(None, "AR", error))
                    await writer.drain()
                    return
                except ValueError:
                    log.warning("mllp.too_large", limit=MAX_MESSAGE_BYTES)
                    text = f"the message is larger than {MAX_MESSAGE_BYTES} bytes"
                    writer.writeblock(mapping.ack(None, "AR", mapping.Hl7Error(text, ack="AR")))
                    await writer.drain()
                    continue
                writer.writeblock(await self.answer(block))
                await writer.drain()
        except ConnectionError:
            log.info("mllp.connection_lost")
        finally:
            writer.close()

    async def answer(self, block: bytes) -> bytes:
        """The ACK for one message: AA once every report it carries is published."""
        message = None
        try:
            message = mapping.parse(block)
            results = mapping.to_results(message, self._lab_id, self._region)
        except mapping.Hl7Error as error:
            where = f"{error.segment}-{error.field}" if error.field else error.segment
            log.info("mllp.refused", ack=error.ack, where=where, code=error.code)
            return mapping.ack(message, error.ack, error)
        control_id = results[0].message_id.split("/")[0]
        try:
            for result in results:
                await self._publish(result)
        except Exception as error:  # the broker is away or refused it: the LIS sends again
            log.warning("mllp.publish_failed", control_id=control_id, error=type(error).__name__)
            problem = mapping.Hl7Error(
                "the message could not be stored just now; send it again",
                code=mapping.APPLICATION_ERROR,
            )
            return mapping.ack(message, "AE", problem)
        log.info("mllp.accepted", control_id=control_id, reports=len(results))
        return mapping.ack(message, "AA")
