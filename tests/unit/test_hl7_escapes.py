"""HL7 v2 escape sequences in result values and notes read as the lab meant them: the
message's own delimiters, hex bytes (UTF-8), line breaks, and formatting that prints nothing;
nothing is cut short and nothing is logged."""

from __future__ import annotations

import logging

import pytest

from services.ingest import hl7, hl7_text

SEPARATORS = "\r|~^&"


def message(obx_value: str, *, note: str = "Checked") -> bytes:
    return "\r".join(
        [
            "MSH|^~\\&|LIS|LAB|RESULTFLOW|LAB|20261120||ORU^R01|M1|P|2.5.1",
            "PID|1||P-1||Okafor^Ada||19800303|F|||||07400 123456",
            "OBR|1||ACC-1|CBC|||20261120",
            f"OBX|1|ST|X^Culture||{obx_value}||||||F",
            f"NTE|1||{note}",
        ]
    ).encode()


def mapped(raw: bytes) -> hl7.IngestLisResult:
    (result,) = hl7.to_results(hl7.parse(raw), "demo-lab", "GB")
    return result


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("\\X41\\ positive", "A positive"),
        ("\\X4142\\", "AB"),
        ("Caf\\XC3A9\\ au lait spots", "Café au lait spots"),  # UTF-8 bytes, one character
        ("Caf\\XE9\\", "Café"),  # not UTF-8: read as Windows-1252
        ("1\\F\\2", "1|2"),
        ("A\\S\\B", "A^B"),
        ("A\\T\\B", "A&B"),
        ("A\\R\\B", "A~B"),
        ("C:\\E\\temp", "C:\\temp"),
        ("\\H\\Growth\\N\\ of E. coli", "Growth of E. coli"),
        ("line one\\.br\\line two", "line one\nline two"),
        ("top\\.sp2\\bottom", "top\n\nbottom"),
        ("a\\.sk3\\b", "a   b"),
        ("\\.in+4\\indented\\.fi\\\\.nf\\", "indented"),
        ("centre\\.ce\\d", "centre\nd"),
        ("\\C2842\\plain\\Zxyz\\text", "plaintext"),
        ("5 \\ 6", "5 \\ 6"),  # a lone escape character: kept, and so is what follows
        ("\\Q\\", "\\Q\\"),  # no such sequence: kept as written
        ("\\XZZ\\", "\\XZZ\\"),  # not hex: kept as written
        ("\\.sp999999\\", "\n" * hl7_text.MAX_REPEAT),
        ("no escapes at all", "no escapes at all"),
    ],
)
def test_escape_sequences_are_decoded(written: str, meant: str) -> None:
    assert hl7_text.unescape(written, SEPARATORS, "\\") == meant


def test_a_result_value_and_its_note_print_what_the_escapes_stand_for() -> None:
    result = mapped(
        message(
            "\\H\\Growth\\N\\ \\X3E\\10\\S\\5 CFU/mL",
            note="Repeat in 48 h\\.br\\Caf\\XC3A9\\ staff",
        )
    )
    assert result.results[0].value == "Growth >10^5 CFU/mL"
    assert result.comments == "Culture: Repeat in 48 h\nCafé staff"


def test_a_message_with_its_own_delimiters_decodes_escapes_with_them() -> None:
    raw = "\r".join(
        [
            "MSH#$*@%#LIS#LAB#RESULTFLOW#LAB#20261120##ORU$R01#M1#P#2.5.1",
            "PID#1##P-1##Okafor$Ada##19800303#F#####07400 123456",
            "OBR#1##ACC-1#CBC###20261120",
            "OBX#1#ST#X$Culture##1@F@2 @X41@@E@||#######F",
        ]
    ).encode()
    (result,) = hl7.to_results(hl7.parse(raw), "demo-lab", "GB")
    assert result.results[0].value == "1#2 A@||"


def test_decoding_never_logs_the_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = mapped(message("Ada Okafor \\Q\\ \\C2842\\ \\X4\\"))
    assert result.results[0].value == "Ada Okafor \\Q\\  \\X4\\"
    assert "Okafor" not in caplog.text
