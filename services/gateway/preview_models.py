"""The admin API's view of a batch's preview (`BatchView.preview`): what ingest found when it
read the sheet for staff to confirm, as `services.ingest.preview` records it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PreviewReport(_View):
    patient_id: str = Field(description="Masked: first character and last two.")
    name: str = Field(description="Masked: the first letter of each name.")
    sample_date: str
    rows: list[int] = Field(description="The sheet rows of its results.")
    results: int
    incomplete: bool = Field(description="Some of this patient's rows were rejected.")


class CellProblem(_View):
    row: int
    column: str = Field(description="The column the reason is about ('' when the whole row).")
    reason: str


class SkippedRow(_View):
    row: int
    reason: str


class PreviewView(_View):
    profile: str | None = Field(description="The sheet profile it was read with.")
    suggested_profile: str | None = Field(
        None, description="None chosen: the stored profile whose column names match the sheet."
    )
    error: str | None = Field(description="Why the sheet cannot be read: nothing to confirm.")
    rows_total: int
    rows_accepted: int
    reports_total: int
    reports: list[PreviewReport] = Field(description="The first 500 reports it would make.")
    rejected_total: int
    rejected: list[CellProblem] = Field(description="Every rejected cell (the first 1,000).")
    skipped: list[SkippedRow] = Field(description="Blank and footer rows, not rejected.")
    unknown_columns: list[str] = Field(description="Header cells no field is read from.")
