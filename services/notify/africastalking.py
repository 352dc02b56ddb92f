"""Africa's Talking's SMS API: one form POST per SMS to /version1/messaging.

Its answer names each recipient's fate in `SMSMessageData.Recipients[].statusCode`:
100/101/102 the provider has the message; 401-409 it refused it (bad number, no balance,
sender not allowed, ...); 500-502 it failed on its side without sending. The three outcomes
are told apart as for every provider (see `providers`): only an answer that proves the
message was not taken is a refusal; a timeout or cut connection after the request went out
is an unknown outcome. Delivery reports are configured once in Africa's Talking's dashboard
(see `services.infra.africastalking`), so the per-message callback is not sent.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from services.infra import africastalking as at
from services.notify import logic
from services.notify.providers import (
    OutcomeUnknown,
    ProviderRefused,
    SentSms,
    retry_after_seconds,
)


class AfricasTalkingProvider:
    name = "africastalking"

    def __init__(
        self,
        *,
        username: str,
        api_key: str,
        sender: str = "",
        base_url: str = "https://api.africastalking.com",
        timeout_seconds: float = 30.0,
    ) -> None:
        if not (username and api_key):
            raise ValueError(
                "Africa's Talking needs RESULTFLOW_AFRICASTALKING_USERNAME and "
                "RESULTFLOW_AFRICASTALKING_API_KEY"
            )
        self._username = username
        self._sender = sender
        self._headers = {"apiKey": api_key, "Accept": "application/json"}
        self._url = at.messaging_url(base_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=10)

    async def send(self, to: str, body: str, status_callback: str) -> SentSms:
        form = {"username": self._username, "to": to, "message": body}
        if self._sender:
            form["from"] = self._sender
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self._url, data=form, headers=self._headers) as response,
            ):
                status = response.status
                retry_after = response.headers.get("Retry-After")
                text = await response.text()
                try:
                    reply: Any = await response.json(content_type=None)
                except ValueError:
                    reply = None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            # No connection was ever made: the provider cannot have seen the request.
            raise ProviderRefused(
                f"could not connect to Africa's Talking: {type(error).__name__}",
                code="connection",
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OutcomeUnknown(
                f"Africa's Talking request interrupted: {type(error).__name__}"
            ) from error
        if status in (500, 502, 504):
            # The whole request failed mid-way (a proxy or the API itself): it may have sent.
            raise OutcomeUnknown(f"Africa's Talking answered {status}; the SMS may have gone")
        if not 200 <= status < 300:
            # 401 bad key or username, 429 too many requests, 503 unavailable: not taken.
            said = logic.redact_phone_numbers(text.strip()[:200]) or f"HTTP {status}"
            raise ProviderRefused(
                f"Africa's Talking refused: {said}",
                http_status=status,
                code=str(status),
                retry_after=retry_after_seconds(retry_after),
            )
        return self._recipient_outcome(status, reply)

    def _recipient_outcome(self, status: int, reply: Any) -> SentSms:
        data = reply.get("SMSMessageData") if isinstance(reply, dict) else None
        if not isinstance(data, dict):
            raise OutcomeUnknown(f"Africa's Talking answered {status} without SMSMessageData")
        recipients = data.get("Recipients")
        if recipients == []:
            # Nobody was sent anything; the message says why (e.g. "InvalidSenderId").
            said = logic.redact_phone_numbers(str(data.get("Message") or "no recipients"))
            raise ProviderRefused(f"Africa's Talking refused: {said}", final=True)
        if not isinstance(recipients, list) or len(recipients) != 1:
            raise OutcomeUnknown("Africa's Talking answered with an unexpected recipient list")
        [recipient] = recipients
        code = recipient.get("statusCode") if isinstance(recipient, dict) else None
        if not isinstance(code, int):
            raise OutcomeUnknown("Africa's Talking answered without a recipient status code")
        if code in at.ACCEPTED:
            message_id = recipient.get("messageId")
            if not isinstance(message_id, str) or not message_id or message_id == "None":
                raise OutcomeUnknown("Africa's Talking accepted the SMS without a message id")
            return SentSms(self.name, message_id, "sent" if code == 101 else "queued")
        if code in at.REFUSED:
            # Not for this provider, whatever is retried; another provider may take it.
            raise ProviderRefused(
                f"Africa's Talking refused: {code} {at.REFUSED[code]}",
                code=str(code),
                final=True,
                opted_out=code == at.OPTED_OUT,
            )
        if code in at.FAILED:
            raise ProviderRefused(
                f"Africa's Talking failed to send: {code} {at.FAILED[code]}",
                code=str(code),
                final=False,
            )
        raise OutcomeUnknown(f"Africa's Talking answered an unknown status code {code}")
