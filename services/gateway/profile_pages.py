"""The dashboard's sheet mapping profiles (admins): the list, the form (the sheet's column
names for each field, date order, phone country, flag words, layout) and delete. Saved in
`services.infra.sheet_profiles` and audited (`sheet_profile.saved`, `sheet_profile.deleted`)
as the admin API (`profile_api`) and `resultflow profiles` do. Chosen at upload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from contracts.v1 import Flag
from services.gateway.web import USER, client_detail, render
from services.infra.audit import Audit, staff
from services.infra.service import Resources
from services.infra.sheet_profiles import (
    FIELD_LABELS,
    FIELDS,
    ProfileNotFound,
    SheetProfile,
    SheetProfiles,
)

LABELS = FIELD_LABELS


def label(field: str) -> str:
    """A field's name as the form shows it."""
    return LABELS.get(field) or field.replace("_", " ").capitalize()


# What staff write after "word =": a flag's code (H, L, HH, LL, <, >, A) or N for normal.
FLAG_CODES = {**{flag.value: flag for flag in Flag if flag.value}, "N": Flag.NORMAL}


def form_fields(profile: SheetProfile | None) -> dict[str, str]:
    """A profile as the form's text fields."""
    if profile is None:
        return {"name": "", "day_first": "", "region": "", "flags": "", "layout": "auto"}
    fields = {f"col_{f}": ", ".join(profile.columns.get(f, [])) for f in FIELDS}  # type: ignore[call-overload]
    day_first = "" if profile.day_first is None else str(profile.day_first).lower()
    flags = "\n".join(f"{word} = {flag.value or 'N'}" for word, flag in profile.flags.items())
    return {
        **fields,
        "name": profile.name,
        "day_first": day_first,
        "region": profile.region or "",
        "flags": flags,
        "layout": profile.layout,
    }


def parse_form(form: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The form as a profile's fields, and what is wrong with the flag words."""
    columns = {
        field: names
        for field in FIELDS
        if (names := [n.strip() for n in form.get(f"col_{field}", "").split(",") if n.strip()])
    }
    flags: dict[str, Flag] = {}
    problems = []
    for number, line in enumerate(form.get("flags", "").splitlines(), start=1):
        if not line.strip():
            continue
        word, _, code = line.partition("=")
        flag = FLAG_CODES.get(code.strip().upper())
        if not word.strip() or flag is None:
            problems.append(
                f"Flag words, line {number}: write 'word = code' with a code of "
                + ", ".join(FLAG_CODES)
            )
            continue
        flags[word.strip()] = flag
    day_first = {"true": True, "false": False}.get(form.get("day_first", ""))
    fields = {
        "name": form.get("name", "").strip(),
        "columns": columns,
        "day_first": day_first,
        "region": form.get("region", "").strip().upper() or None,
        "flags": flags,
        "layout": form.get("layout", "auto"),
    }
    return fields, problems


class ProfilePages:
    def __init__(self, resources: Resources) -> None:
        self._store = SheetProfiles(resources.db)
        self._audit = Audit(resources.db)
        self._lab_id = resources.settings.lab_id

    async def index(self, request: web.Request) -> web.StreamResponse:
        profiles = await self._store.list(self._lab_id)
        labels = {field: label(field) for field in FIELDS}
        return render(request, "sheet_profiles.html", {"profiles": profiles, "labels": labels})

    async def new(self, request: web.Request) -> web.StreamResponse:
        return self._form(request, form_fields(None), editing=False)

    async def edit(self, request: web.Request) -> web.StreamResponse:
        try:
            profile = await self._store.get(self._lab_id, request.match_info["name"])
        except ProfileNotFound:
            raise web.HTTPNotFound(text="No such sheet profile.") from None
        return self._form(request, form_fields(profile), editing=True)

    async def save(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items() if isinstance(v, str)}
        fields, problems = parse_form(form)
        try:
            profile = SheetProfile.model_validate(fields)
        except ValidationError as error:
            problems += [_problem(e) for e in error.errors()]
        if problems:
            editing = form.get("editing") == "1"
            return self._form(request, form, editing=editing, errors=problems, status=400)
        await self._store.save(self._lab_id, profile, request[USER])
        detail = {**client_detail(request), "profile": profile.name}
        await self._audit.write(staff(request[USER]), "sheet_profile.saved", None, detail)
        raise web.HTTPSeeOther("/sheet-profiles")

    async def delete(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not await self._store.delete(self._lab_id, name):
            raise web.HTTPNotFound(text="No such sheet profile.")
        detail = {**client_detail(request), "profile": name}
        await self._audit.write(staff(request[USER]), "sheet_profile.deleted", None, detail)
        raise web.HTTPSeeOther("/sheet-profiles")

    def _form(
        self,
        request: web.Request,
        values: Mapping[str, str],
        *,
        editing: bool,
        errors: list[str] | None = None,
        status: int = 200,
    ) -> web.Response:
        context = {
            "values": values,
            "fields": FIELDS,
            "labels": {field: label(field) for field in FIELDS},
            "editing": editing,
            "errors": errors or [],
            "flag_codes": FLAG_CODES,
        }
        return render(request, "sheet_profile.html", context, status=status)


def _problem(error: Any) -> str:
    where = " / ".join(str(p) for p in error["loc"]) or "profile"
    return f"{where}: {error['msg']}"


def setup_profile_pages(app: web.Application, resources: Resources) -> None:
    pages = ProfilePages(resources)
    app.router.add_get("/sheet-profiles", pages.index)
    app.router.add_get("/sheet-profiles/new", pages.new)  # before {name}
    app.router.add_post("/sheet-profiles", pages.save)
    app.router.add_get("/sheet-profiles/{name}", pages.edit)
    app.router.add_post("/sheet-profiles/{name}/delete", pages.delete)
