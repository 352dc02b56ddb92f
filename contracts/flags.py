"""The result-flag vocabulary, in one place for every intake (sheets, HL7 v2, FHIR) and
every reader (report template, portal, release rules): HL7 v2 table 0078 codes
(`contracts.v1.Flag`), their words, and the spellings lab exports use for them.

`normalise_flag("Positive")` is `Flag.ABNORMAL`; `normalise_flag("hh")` is
`Flag.CRITICAL_HIGH`; an unknown spelling is None (the caller reports it, naming the column).
Pure data, no I/O.
"""

from __future__ import annotations

import re

from contracts.v1 import Flag

# The flag in words, as a report prints it beside the value.
FLAG_WORDS: dict[Flag, str] = {
    Flag.NORMAL: "",
    Flag.HIGH: "High",
    Flag.LOW: "Low",
    Flag.CRITICAL_HIGH: "Critical high",
    Flag.CRITICAL_LOW: "Critical low",
    Flag.BELOW_SCALE: "Below measurable range",
    Flag.ABOVE_SCALE: "Above measurable range",
    Flag.ABNORMAL: "Abnormal",
    Flag.VERY_ABNORMAL: "Very abnormal",
    Flag.SIGNIFICANTLY_HIGH: "Significantly high",
    Flag.SIGNIFICANTLY_LOW: "Significantly low",
    Flag.CHANGE_UP: "Significant rise",
    Flag.CHANGE_DOWN: "Significant fall",
    Flag.BETTER: "Better",
    Flag.WORSE: "Worse",
    Flag.SUSCEPTIBLE: "Susceptible",
    Flag.RESISTANT: "Resistant",
    Flag.INTERMEDIATE: "Intermediate",
    Flag.MODERATELY_SUSCEPTIBLE: "Moderately susceptible",
    Flag.VERY_SUSCEPTIBLE: "Very susceptible",
    Flag.SUSCEPTIBLE_DOSE_DEPENDENT: "Susceptible, dose dependent",
    Flag.NON_SUSCEPTIBLE: "Not susceptible",
    Flag.SYNERGY_RESISTANT: "Synergy: resistant",
    Flag.SYNERGY_SUSCEPTIBLE: "Synergy: susceptible",
    Flag.POSITIVE: "Positive",
    Flag.NEGATIVE: "Negative",
    Flag.INDETERMINATE: "Indeterminate",
    Flag.DETECTED: "Detected",
    Flag.NOT_DETECTED: "Not detected",
    Flag.REACTIVE: "Reactive",
    Flag.WEAKLY_REACTIVE: "Weakly reactive",
    Flag.NON_REACTIVE: "Non-reactive",
    Flag.ANTI_COMPLEMENTARY: "Anti-complementary substances present",
    Flag.CYTOTOXIC: "Cytotoxic substance present",
    Flag.QC_FAILURE: "Quality control failure",
    Flag.OUTSIDE_THRESHOLD: "Outside threshold",
    Flag.EXPECTED: "Expected",
    Flag.UNEXPECTED: "Unexpected",
    Flag.NO_BREAKPOINT: "No defined breakpoint",
}

CRITICAL = frozenset({Flag.CRITICAL_HIGH, Flag.CRITICAL_LOW})
# Flags that say nothing is wrong: a report shows them but does not mark the result.
NOT_ABNORMAL = frozenset(
    {
        Flag.NORMAL,
        Flag.NEGATIVE,
        Flag.NOT_DETECTED,
        Flag.NON_REACTIVE,
        Flag.SUSCEPTIBLE,
        Flag.EXPECTED,
        Flag.BETTER,
    }
)

# Spellings beyond the codes themselves (compared lower case, single spaces, no dots).
SPELLINGS: dict[str, Flag] = {
    "n": Flag.NORMAL,
    "normal": Flag.NORMAL,
    "within range": Flag.NORMAL,
    "wnl": Flag.NORMAL,
    "-": Flag.NORMAL,
    "high": Flag.HIGH,
    "low": Flag.LOW,
    "↑": Flag.HIGH,
    "↓": Flag.LOW,
    "critical high": Flag.CRITICAL_HIGH,
    "critically high": Flag.CRITICAL_HIGH,
    "panic high": Flag.CRITICAL_HIGH,
    "very high": Flag.CRITICAL_HIGH,
    "h*": Flag.CRITICAL_HIGH,
    "critical low": Flag.CRITICAL_LOW,
    "critically low": Flag.CRITICAL_LOW,
    "panic low": Flag.CRITICAL_LOW,
    "very low": Flag.CRITICAL_LOW,
    "l*": Flag.CRITICAL_LOW,
    "abnormal": Flag.ABNORMAL,
    "abn": Flag.ABNORMAL,
    "*": Flag.ABNORMAL,
    "positive": Flag.ABNORMAL,
    "+": Flag.ABNORMAL,
    "reactive": Flag.ABNORMAL,
    "very abnormal": Flag.VERY_ABNORMAL,
    "critical": Flag.VERY_ABNORMAL,
    "negative": Flag.NEGATIVE,
    "non-reactive": Flag.NON_REACTIVE,
    "non reactive": Flag.NON_REACTIVE,
    "nonreactive": Flag.NON_REACTIVE,
    "not reactive": Flag.NON_REACTIVE,
    "weakly reactive": Flag.WEAKLY_REACTIVE,
    "detected": Flag.DETECTED,
    "not detected": Flag.NOT_DETECTED,
    "indeterminate": Flag.INDETERMINATE,
    "equivocal": Flag.INDETERMINATE,
    "borderline": Flag.INDETERMINATE,
    "susceptible": Flag.SUSCEPTIBLE,
    "sensitive": Flag.SUSCEPTIBLE,
    "resistant": Flag.RESISTANT,
    "intermediate": Flag.INTERMEDIATE,
}
_BY_CODE = {flag.value.lower(): flag for flag in Flag}


def normalise_flag(raw: str) -> Flag | None:
    """The flag a sheet cell or message field means, or None when it is no known flag."""
    spelled = re.sub(r"\s+", " ", raw.replace(".", "")).strip().lower()
    found = _BY_CODE.get(spelled)
    return found if found is not None else SPELLINGS.get(spelled)


def flag_words(flag: str) -> str:
    """A stored flag in words ("" when within range); an unknown code is shown as it is."""
    try:
        return FLAG_WORDS[Flag(flag)]
    except ValueError:
        return flag


def is_abnormal(flag: str) -> bool:
    """Whether a report marks the result (every flag except the reassuring ones)."""
    try:
        return Flag(flag) not in NOT_ABNORMAL
    except ValueError:
        return True


ACCEPTED = "an HL7 table 0078 code (H, L, HH, LL, A, AA, N, POS, NEG...), High, Low, empty"
