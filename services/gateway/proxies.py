"""Which address a request came from when reverse proxies stand in front of the gateway:
pure (`web.client_address` applies it to a request).

Only proxies in the trusted list (`RESULTFLOW_TRUSTED_PROXIES`) are believed. Each proxy
appends the address it was connected from to X-Forwarded-For, so walking the header from the
right, past trusted proxies, the first address that is not one of them is the client; what
lies further left was written by that client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def trusted_networks(setting: str) -> tuple[Network, ...]:
    """The setting's comma-separated IPs and CIDRs; a word that is neither is a mistake."""
    networks = []
    for item in setting.split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"RESULTFLOW_TRUSTED_PROXIES: {item.strip()!r} is no IP") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `1.2.3.4:port` or `[v6]:port`; None if not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For address that is not a trusted proxy (the left-most one when
    all are). An entry that is not an address ends the walk at the last hop known."""
    known = parse_address(peer)
    if known is None or not _trusted(known, trusted):
        return str(known) if known is not None else peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        known = address
        if not _trusted(address, trusted):
            break
    return str(known)


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
