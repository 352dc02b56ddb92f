"""The audit trail's pure parts: which address a request came from behind proxies, the hash
chain's canonical form, the filters and the spreadsheet-safe CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.gateway.proxies import client_address, trusted_networks
from services.infra.audit_chain import ChainCheck, entry_hash
from services.infra.audit_search import AuditFilter, csv_cell, csv_row

PROXIES = trusted_networks("10.0.0.0/8, 192.0.2.1")


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("203.0.113.7", ["198.51.100.1"], ()) == "203.0.113.7"


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.7", ["198.51.100.1"], PROXIES) == "203.0.113.7"


def test_behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() -> None:
    # The client claims 1.1.1.1; its real address was appended by the first proxy.
    forwarded = ["1.1.1.1, 198.51.100.9", "10.1.2.3"]
    assert client_address("192.0.2.1", forwarded, PROXIES) == "198.51.100.9"


def test_when_every_hop_is_trusted_the_left_most_one_is_recorded() -> None:
    assert client_address("10.0.0.2", ["10.0.0.9, 10.0.0.5"], PROXIES) == "10.0.0.9"


def test_a_hop_that_is_no_address_ends_the_walk_at_the_last_one_known() -> None:
    assert client_address("10.0.0.2", ["203.0.113.5, garbage"], PROXIES) == "10.0.0.2"


def test_forwarded_addresses_with_ports_and_mapped_ipv6_are_read() -> None:
    assert client_address("::ffff:10.0.0.2", ["198.51.100.9:5555"], PROXIES) == "198.51.100.9"
    assert client_address("10.0.0.2", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::1"


def test_a_trusted_proxies_setting_that_is_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match=r"proxy\.example"):
        trusted_networks("10.0.0.1, proxy.example")


def chained(count: int) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for seq in range(1, count + 1):
        entry: dict[str, object] = {
            "seq": seq,
            "at": datetime(2026, 3, 2, 9, 0, seq, 123456, tzinfo=UTC),
            "action": f"action.{seq}",
            "detail": {"n": seq},
            "prev_hash": entries[-1]["hash"] if entries else "",
        }
        entry["hash"] = entry_hash(entry)
        entries.append(entry)
    return entries


def test_the_hash_is_the_same_after_a_round_trip_that_drops_microseconds_and_the_zone() -> None:
    [entry] = chained(1)
    stored = {**entry, "at": datetime(2026, 3, 2, 9, 0, 1, 123000), "_id": "any"}
    assert entry_hash(stored) == entry["hash"]


def test_the_chain_check_names_the_first_changed_entry() -> None:
    entries = chained(4)
    entries[2] = {**entries[2], "detail": {"n": 99}}
    check = ChainCheck()
    broken = next(b for b in map(check.feed, entries) if b is not None)
    assert (broken.seq, broken.action) == (3, "action.3") and "hash" in broken.why


def test_spreadsheet_formulas_are_escaped_in_every_cell() -> None:
    for formula in ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(formula) == "'" + formula
    assert csv_cell("report.viewed") == "report.viewed"
    row = csv_row({"actor": "=cmd", "action": "a", "detail": {"filename": "=x.xlsx"}})
    assert row[2] == "'=cmd" and row[8] == '{"filename": "=x.xlsx"}'


def test_the_filters_read_the_query_and_ignore_what_they_do_not_know() -> None:
    filters = AuditFilter.from_query(
        {"actor": " ann ", "action": "report.", "outcome": "bogus", "from": "2026-03-01"}
    )
    assert filters.params() == {"actor": "ann", "action": "report.", "from": "2026-03-01"}
    query = filters.mongo()
    assert query["action"] == {"$regex": "^report\\."}
    assert query["at"] == {"$gte": datetime(2026, 3, 1, tzinfo=UTC)}
