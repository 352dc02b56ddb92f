"""A sheet profile applied to reading (pure): its header names added to the usual ones (a
name the profile gives a field is that field's, whatever it usually means), its layout, date
order, phone region and flag words."""

from __future__ import annotations

from datetime import date

from services.infra.sheet_profiles import SheetProfile
from services.ingest import layout, logic


def columns(profile: SheetProfile | None) -> dict[str, tuple[str, ...]]:
    """field -> accepted header names: the profile's first, then the usual ones it leaves."""
    if profile is None:
        return dict(logic.COLUMNS)
    taken = {name for names in profile.columns.values() for name in names}
    return {
        field: (
            *profile.columns.get(field, []),  # type: ignore[call-overload]
            *(alias for alias in usual if alias not in taken),
        )
        for field, usual in logic.COLUMNS.items()
    }


def group(
    table: layout.Table, profile: SheetProfile | None, default_region: str, today: date
) -> logic.SheetOutcome:
    """The table's rows validated and grouped as the profile says."""
    return logic.group_rows(
        table.header,
        table.rows,
        (profile.region if profile and profile.region else default_region),
        today,
        row_numbers=table.row_numbers,
        day_first=profile.day_first if profile else None,
        columns=columns(profile) if table.layout == "long" else logic.COLUMNS,
        flags=profile.flags if profile else None,
    )
