"""SMS provider webhooks: delivery receipts, verified, handed to notify as `SmsReceipt`; and
inbound SMS (a patient's STOP or START reply), verified, stored as the number's opt-out.
The development outbox has an inbound door of its own, so STOP can be tried locally."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web

from contracts.v1 import SmsReceipt, utcnow
from services.gateway.web import client_detail
from services.infra import africastalking, twilio
from services.infra.audit import PATIENT, SYSTEM, Audit
from services.infra.broker import publish
from services.infra.documents import AuditOutcome
from services.infra.opt_outs import Keyword, OptOuts, keyword
from services.infra.phones import PhoneError, normalise_phone
from services.infra.service import Resources

TWILIO_INBOUND_PATH = "/webhooks/twilio/inbound"
OUTBOX_INBOUND_PATH = "/webhooks/outbox/inbound"
# Twilio's answer to an inbound SMS: TwiML; an empty one sends no reply of ours.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

log = structlog.get_logger()


class WebhookHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._audit = Audit(resources.db)
        self._opt_outs = OptOuts(resources.db)

    async def _signed_params(self, request: web.Request) -> dict[str, str]:
        """The form Twilio posted, once its signature proves it came from Twilio; else 403
        (and, for inbound messages, an audit entry)."""
        form = await request.post()
        params = [(key, value) for key, value in form.items() if isinstance(value, str)]
        # Twilio signs the URL it was told to call: our public address, not the one we see.
        url = self._settings.public_base_url.rstrip("/") + request.raw_path
        signature = request.headers.get("X-Twilio-Signature", "")
        if not twilio.signature_valid(self._settings.twilio_auth_token, url, params, signature):
            log.warning("webhook.twilio_bad_signature", path=request.path)
            detail = {"webhook": request.path, **client_detail(request)}
            await self._audit.write(
                SYSTEM, "webhook.bad_signature", None, detail, outcome=AuditOutcome.REFUSED
            )
            raise web.HTTPForbidden(text="Invalid signature.")
        return dict(params)

    async def twilio_inbound(self, request: web.Request) -> web.StreamResponse:
        fields = await self._signed_params(request)
        await self._inbound("twilio", fields.get("From", ""), fields.get("Body", ""))
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def outbox_inbound(self, request: web.Request) -> web.StreamResponse:
        """The development outbox's stand-in for a phone's reply: `From` and `Body`."""
        if self._settings.sms_provider != "outbox":
            raise web.HTTPNotFound()
        form = await request.post()
        sender, body = str(form.get("From", "")), str(form.get("Body", ""))
        phone = sender.strip()
        if not E164.match(phone):  # a national number, as someone trying it types it
            try:
                phone = normalise_phone(sender, self._settings.default_region)
            except PhoneError:
                raise web.HTTPBadRequest(text="From is not a mobile number.") from None
        await self._inbound("outbox", phone, body)
        return web.Response(status=204)

    async def _inbound(self, provider: str, phone: str, body: str) -> None:
        """A reply from a phone: STOP opts the number out, START back in; the rest is left."""
        asked = keyword(body)
        if asked is None or not phone:
            log.info("webhook.inbound_ignored", provider=provider)
            return
        word = body.strip().strip(".!").strip().upper()
        await self._opt_outs.record(phone, asked, utcnow(), source="inbound_sms", word=word)
        action = "sms.opted_out" if asked is Keyword.STOP else "sms.opted_in"
        await self._audit.write(PATIENT, action, None, {"provider": provider, "keyword": word})
        log.info(action, provider=provider)

    async def twilio_status(self, request: web.Request) -> web.StreamResponse:
        fields = await self._signed_params(request)
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

    async def africastalking_delivery(self, request: web.Request) -> web.StreamResponse:
        """Africa's Talking's delivery report (form: id, status, phoneNumber, networkCode,
        failureReason, retryCount). It signs nothing: the URL's last segment must be our
        secret (`RESULTFLOW_AFRICASTALKING_CALLBACK_SECRET`), compared in constant time."""
        given = request.match_info.get("secret", "")
        if not africastalking.secret_valid(self._settings.africastalking_callback_secret, given):
            # The route, not the path: a near-miss of the secret stays out of the logs.
            log.warning("webhook.africastalking_bad_secret")
            detail = {"webhook": africastalking.DELIVERY_ROUTE, **client_detail(request)}
            await self._audit.write(
                SYSTEM, "webhook.bad_signature", None, detail, outcome=AuditOutcome.REFUSED
            )
            raise web.HTTPForbidden(text="Invalid delivery report URL.")
        form = await request.post()
        message_id = str(form.get("id", "")).strip()
        if not message_id or len(message_id) > 100:
            raise web.HTTPBadRequest(text="id missing or too long.")
        status = africastalking.receipt_status(str(form.get("status", "")))
        if status is None:
            log.info("webhook.africastalking_status_ignored", provider_message_id=message_id)
            return web.Response(text="OK")
        receipt = SmsReceipt(
            correlation_id=uuid.uuid4().hex,
            provider="africastalking",
            provider_message_id=message_id,
            status=status,  # type: ignore[arg-type]
            error_code=str(form.get("failureReason", "")).strip()[:100],
        )
        await publish(self._resources.broker, receipt)
        log.info("webhook.africastalking_receipt", provider_message_id=message_id, status=status)
        # Africa's Talking retries a report until it gets a 200.
        return web.Response(text="OK")


def setup_webhooks(app: web.Application, resources: Resources) -> None:
    handlers = WebhookHandlers(resources)
    app.router.add_post(twilio.STATUS_CALLBACK_PATH, handlers.twilio_status)
    app.router.add_post(TWILIO_INBOUND_PATH, handlers.twilio_inbound)
    app.router.add_post(OUTBOX_INBOUND_PATH, handlers.outbox_inbound)
    app.router.add_post(africastalking.DELIVERY_ROUTE, handlers.africastalking_delivery)
