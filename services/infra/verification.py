"""What makes a printed report checkable: its short reference, the URL of its verification
page (`/v/<reference>` on the gateway) and the QR code of that URL, printed by the render
step on every report (at the template's `{{ verification_qr }}`, or at the end when the
template has none)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import segno

REFERENCE_LENGTH = 12


def short_reference(report_id: str) -> str:
    """A reference short enough to read out on the phone, still unique within a lab's day."""
    return report_id[:REFERENCE_LENGTH].upper()


def verification_url(public_base_url: str, reference: str) -> str:
    return f"{public_base_url.rstrip('/')}/v/{reference}"


def qr_png(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=6, border=2)
    return out.getvalue()


@dataclass(frozen=True)
class Verification:
    url: str
    qr_png: bytes

    @classmethod
    def of(cls, url: str) -> Verification:
        return cls(url, qr_png(url))
