"""SMS provider webhooks: delivery receipts, verified, handed to notify as `SmsReceipt`."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from contracts.v1 import SmsReceipt
from services.infra import twilio
from services.infra.broker import publish
from services.infra.service import Resources

log = structlog.get_logger()


class WebhookHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._settings = resources.settings

    async def twilio_status(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        params = [(key, value) for key, value in form.items() if isinstance(value, str)]
        # Twilio signs the URL it was told to call: our public address, not the one we see.
        url = self._settings.public_base_url.rstrip("/") + request.raw_path
        signature = request.headers.get("X-Twilio-Signature", "")
        if not twilio.signature_valid(self._settings.twilio_auth_token, url, params, signature):
            log.warning("webhook.twilio_bad_signature")
            raise web.HTTPForbidden(text="Invalid signature.")
        fields = dict(params)
        message_sid = fields.get("MessageSid", "").strip()
        if not message_sid:
            raise web.HTTPBadRequest(text="MessageSid missing.")
        status = twilio.receipt_status(fields.get("MessageStatus", ""))
        if status is None:
            # e.g. "receiving": nothing notify acts on; 2xx so Twilio does not retry it.
            log.info("webhook.twilio_status_ignored", provider_message_id=message_sid)
            return web.Response(status=204)
        receipt = SmsReceipt(
            correlation_id=uuid.uuid4().hex,
            provider="twilio",
            provider_message_id=message_sid,
            status=status,  # type: ignore[arg-type]
            error_code=fields.get("ErrorCode", ""),
        )
        await publish(self._resources.broker, receipt)
        log.info("webhook.twilio_receipt", provider_message_id=message_sid, status=status)
        return web.Response(status=204)


def setup_webhooks(app: web.Application, resources: Resources) -> None:
    handlers = WebhookHandlers(resources)
    app.router.add_post(twilio.STATUS_CALLBACK_PATH, handlers.twilio_status)
