"""Sheet mapping profiles: how one lab's export writes its results sheet. Which header names
stand for which field, the date order (03/04/2026: day first or month first), the country of
phone numbers written without a code, the lab's own flag words, and the layout (long: one
result per row; wide: one column per test; auto: found from the header).

Kept in MongoDB (`sheet_profiles`, one document per lab and profile name, written only here);
edited by staff in the dashboard, chosen at upload, used by ingest and `resultflow intake
check --profile`. `suggest` picks the profile whose column names best match a sheet's
headers. The model and the matching are pure; `SheetProfiles` is the only I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.v1 import Flag, utcnow
from services.infra.database import Database

FieldName = Literal[
    "patient_id",
    "name",
    "date_of_birth",
    "sex",
    "phone",
    "sample_date",
    "test",
    "value",
    "unit",
    "reference_range",
    "flag",
    "language",
    "pin",
]
FIELDS: tuple[str, ...] = get_args(FieldName)
# Each field's column name in the usual layout, as staff see it in messages and forms.
FIELD_LABELS: dict[str, str] = {
    "patient_id": "Patient ID",
    "name": "Name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "phone": "Phone",
    "sample_date": "Sample date",
    "test": "Test",
    "value": "Value",
    "unit": "Unit",
    "reference_range": "Reference range",
    "flag": "Flag",
    "pin": "PIN",
    "language": "Language",
}
NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,59}$"


def normalise_header(header: object) -> str:
    """A header as matched: lower case, runs of spaces and underscores as one space."""
    return re.sub(r"[\s_]+", " ", str(header or "")).strip().lower()


class SheetProfile(BaseModel):
    """One lab export's way of writing a results sheet."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="Shown at upload, e.g. 'Sysmex export'.")
    columns: dict[FieldName, list[str]] = Field(
        default_factory=dict,
        description="Field -> the sheet's header names for it (any case), besides the usual.",
    )
    day_first: bool | None = Field(
        None, description="03/04/2026 is 3 April (true), March 4 (false); unset: a row error."
    )
    region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Country of numbers without a country code."
    )
    flags: dict[str, Flag] = Field(
        default_factory=dict, description="The lab's flag words (any case) -> HL7 flag."
    )
    layout: Literal["auto", "long", "wide"] = "auto"

    @field_validator("columns")
    @classmethod
    def _headers_named_once(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        cleaned: dict[str, list[str]] = {}
        for field_name, headers in value.items():
            names = [normalise_header(h) for h in headers if normalise_header(h)]
            for name in names:
                if seen.setdefault(name, field_name) != field_name:
                    both = f"{seen[name]} and {field_name}"
                    raise ValueError(f"header '{name}' is given for both {both}")
            if len(names) > 20 or any(len(n) > 100 for n in names):
                raise ValueError(f"{field_name}: at most 20 header names of 100 characters")
            cleaned[field_name] = names
        return cleaned

    @field_validator("flags")
    @classmethod
    def _flag_words(cls, value: dict[str, Flag]) -> dict[str, Flag]:
        if len(value) > 50:
            raise ValueError("at most 50 flag words")
        return {word.strip().lower(): flag for word, flag in value.items() if word.strip()}

    def flag_for(self, word: str) -> Flag | None:
        return self.flags.get(word.strip().lower())


def suggest(profiles: Sequence[SheetProfile], headers: Iterable[object]) -> SheetProfile | None:
    """The profile naming the most of these header cells (at least one), or None."""
    cells = {normalise_header(h) for h in headers} - {""}
    best: tuple[int, SheetProfile] | None = None
    for profile in profiles:
        known = {name for names in profile.columns.values() for name in names}
        score = len(cells & known)
        if score and (best is None or score > best[0]):
            best = (score, profile)
    return best[1] if best else None


class ProfileNotFound(LookupError):
    pass


class SheetProfiles:
    """The owner of `sheet_profiles`."""

    def __init__(self, db: Database) -> None:
        self._collection = db.sheet_profiles

    async def list(self, lab_id: str) -> list[SheetProfile]:
        cursor = self._collection.find({"lab_id": lab_id}).sort("name", 1)
        return [_profile(document) async for document in cursor]

    async def get(self, lab_id: str, name: str) -> SheetProfile:
        """The lab's profile of that name; ProfileNotFound says so when there is none."""
        document = await self._collection.find_one({"lab_id": lab_id, "name": name})
        if document is None:
            raise ProfileNotFound(f"sheet profile '{name}' is not known")
        return _profile(document)

    async def exists(self, lab_id: str, name: str) -> bool:
        return await self._collection.count_documents({"lab_id": lab_id, "name": name}) > 0

    async def save(self, lab_id: str, profile: SheetProfile, by: str) -> None:
        """Create the profile, or replace the one of the same name."""
        fields = profile.model_dump(mode="json")
        await self._collection.update_one(
            {"lab_id": lab_id, "name": profile.name},
            {
                "$set": {**fields, "updated_at": utcnow(), "updated_by": by},
                "$setOnInsert": {"lab_id": lab_id},
            },
            upsert=True,
        )

    async def delete(self, lab_id: str, name: str) -> bool:
        """Remove the lab's profile of that name; False when there was none. Batches that
        named it keep the name they were read with."""
        result = await self._collection.delete_one({"lab_id": lab_id, "name": name})
        return result.deleted_count == 1


def _profile(document: dict[str, Any]) -> SheetProfile:
    fields = {k: document[k] for k in SheetProfile.model_fields if k in document}
    return SheetProfile.model_validate(fields)
