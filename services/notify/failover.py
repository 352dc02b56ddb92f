"""Failover between SMS providers, and waiting out a provider's rate limit.

The providers are tried in the order `RESULTFLOW_SMS_PROVIDERS` lists them. The next one is
asked only when the current one certainly does not have the message: it refused it, or could
not be reached before it accepted it (`ProviderRefused`). An unknown outcome (a timeout or a
cut connection after the request went out, an ambiguous 5xx) is never failed over: the
patient could get the SMS twice; it propagates and stays for a person. A patient who opted
out with one provider is not texted through another.

A 429 is waited out when its Retry-After is short (at most `max_wait` seconds, three times),
then the same provider is asked again; a longer one counts as a refusal, so the next provider
sends, or (the last one) the NotifyPatient message is redelivered with the usual backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import structlog

from services.notify.providers import ProviderRefused, SentSms, SmsProvider

log = structlog.get_logger()

RATE_LIMIT_TRIES = 3
DEFAULT_RATE_LIMIT_WAIT = 1.0  # a 429 without Retry-After


class FailoverProvider:
    """An `SmsProvider` made of several, each tried when the ones before it refused."""

    def __init__(
        self,
        providers: Sequence[SmsProvider],
        *,
        max_wait: float = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not providers:
            raise ValueError("no SMS provider configured")
        self._providers = list(providers)
        self._max_wait = max_wait
        self._sleep = sleep
        self.name = ",".join(provider.name for provider in providers)

    @property
    def providers(self) -> list[SmsProvider]:
        return list(self._providers)

    async def send(self, to: str, body: str, status_callback: str) -> SentSms:
        refusals: list[tuple[str, ProviderRefused]] = []
        for provider in self._providers:
            try:
                sent = await self._send_within_rate_limit(provider, to, body, status_callback)
            except ProviderRefused as error:
                if error.opted_out:
                    raise
                refusals.append((provider.name, error))
                log.warning(
                    "notify.provider_refused_trying_next",
                    provider=provider.name,
                    http_status=error.http_status,
                    code=error.code,
                )
                continue
            # OutcomeUnknown (and anything unexpected) propagates: never a second provider.
            failed_over_from = tuple(name for name, _ in refusals)
            if failed_over_from:
                log.info("notify.failed_over", provider=sent.provider, after=failed_over_from)
            return replace(sent, failed_over_from=failed_over_from)
        raise _all_refused(refusals)

    async def _send_within_rate_limit(
        self, provider: SmsProvider, to: str, body: str, status_callback: str
    ) -> SentSms:
        for attempt in range(1, RATE_LIMIT_TRIES + 1):
            try:
                return await provider.send(to, body, status_callback)
            except ProviderRefused as error:
                if error.http_status != 429 or attempt == RATE_LIMIT_TRIES:
                    raise
                wait = DEFAULT_RATE_LIMIT_WAIT if error.retry_after is None else error.retry_after
                if wait > self._max_wait:
                    raise
                log.info("notify.rate_limited", provider=provider.name, wait_seconds=wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _all_refused(refusals: list[tuple[str, ProviderRefused]]) -> ProviderRefused:
    """One refusal (a single provider's own), or every provider's words in one: final only
    when each refusal is, else the message is redelivered and the chain tried again."""
    if len(refusals) == 1:
        return refusals[0][1]
    last = refusals[-1][1]
    return ProviderRefused(
        "; ".join(f"{name}: {error.reason}" for name, error in refusals),
        code=last.code,
        retry_after=last.retry_after,
        final=all(error.permanent for _, error in refusals),
        opted_out=False,
    )
