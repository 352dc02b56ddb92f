"""Sheet mapping profiles in the dashboard and the admin API: admins create, edit and delete
them (audited); uploaders may list them over the API to name one at upload, not change them."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.permissions import Role
from services.infra.database import Database
from services.infra.sheet_profiles import SheetProfiles
from tests.support import PASSWORD, csrf_from

SYSMEX = {
    "name": "Sysmex",
    "columns": {"patient_id": ["Lab No"], "value": ["Res"]},
    "day_first": True,
    "region": "FR",
    "flags": {"Pos": "A"},
    "layout": "long",
}


async def token_for(db: Database, user: str, role: Role) -> dict[str, str]:
    await create_user(db, user, PASSWORD, role=role)
    _, token = await ApiTokens(db).create(user, "tests")
    return {"Authorization": f"Bearer {token}"}


async def test_an_admin_saves_reads_lists_and_deletes_a_profile_over_the_api(
    client: TestClient[Any, Any], db: Database
) -> None:
    admin = await token_for(db, "admin", Role.ADMIN)
    saved = await client.put(f"{PREFIX}/sheet-profiles/Sysmex", json=SYSMEX, headers=admin)
    assert saved.status == 200, await saved.text()
    assert (await saved.json())["columns"] == {"patient_id": ["lab no"], "value": ["res"]}
    shown = await (await client.get(f"{PREFIX}/sheet-profiles/Sysmex", headers=admin)).json()
    assert (shown["day_first"], shown["region"], shown["flags"]) == (True, "FR", {"pos": "A"})
    listed = await (await client.get(f"{PREFIX}/sheet-profiles", headers=admin)).json()
    assert [p["name"] for p in listed["items"]] == ["Sysmex"]

    deleted = await client.delete(f"{PREFIX}/sheet-profiles/Sysmex", headers=admin)
    assert deleted.status == 200
    gone = await client.get(f"{PREFIX}/sheet-profiles/Sysmex", headers=admin)
    assert gone.status == 404 and (await gone.json())["error"] == "not_found"
    again = await client.delete(f"{PREFIX}/sheet-profiles/Sysmex", headers=admin)
    assert again.status == 404
    actions = [a["action"] async for a in db.audit.find({"action": {"$regex": "^sheet_"}})]
    assert actions == ["sheet_profile.saved", "sheet_profile.deleted"]


async def test_a_profile_that_is_not_valid_is_refused_naming_the_problem(
    client: TestClient[Any, Any], db: Database
) -> None:
    admin = await token_for(db, "admin", Role.ADMIN)
    clash = {**SYSMEX, "columns": {"patient_id": ["Lab No"], "name": ["lab no"]}}
    refused = await client.put(f"{PREFIX}/sheet-profiles/Sysmex", json=clash, headers=admin)
    assert refused.status == 400
    assert "given for both" in str((await refused.json())["detail"])
    renamed = await client.put(f"{PREFIX}/sheet-profiles/Other", json=SYSMEX, headers=admin)
    assert renamed.status == 400
    assert await db.sheet_profiles.count_documents({}) == 0


async def test_an_uploader_may_list_profiles_but_not_change_them_and_openapi_names_them(
    client: TestClient[Any, Any], db: Database, settings: Any
) -> None:
    from services.infra.sheet_profiles import SheetProfile

    await SheetProfiles(db).save(settings.lab_id, SheetProfile.model_validate(SYSMEX), "a")
    uploader = await token_for(db, "uma", Role.UPLOADER)
    listed = await client.get(f"{PREFIX}/sheet-profiles", headers=uploader)
    assert listed.status == 200 and len((await listed.json())["items"]) == 1
    put = await client.put(f"{PREFIX}/sheet-profiles/Sysmex", json=SYSMEX, headers=uploader)
    delete = await client.delete(f"{PREFIX}/sheet-profiles/Sysmex", headers=uploader)
    assert (put.status, delete.status) == (403, 403)
    spec = await (await client.get(f"{PREFIX}/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/api/v1/sheet-profiles/{name}"]) == {"get", "put", "delete"}
    assert "SheetProfile" in spec["components"]["schemas"]
    assert "post" in paths["/api/v1/batches/{batch_id}/confirm"]


async def test_an_admin_writes_edits_and_deletes_a_profile_in_the_dashboard(
    admin: TestClient[Any, Any], db: Database, settings: Any
) -> None:
    form = {
        "csrf_token": await csrf_from(admin, "/sheet-profiles/new"),
        "name": "Roche cobas",
        "col_patient_id": "Sample No, Lab No",
        "col_flag": "Interp",
        "day_first": "false",
        "region": "de",
        "flags": "pos = A\nneg = N",
        "layout": "wide",
    }
    saved = await admin.post("/sheet-profiles", data=form)
    assert saved.status == 200 and saved.url.path == "/sheet-profiles"
    assert "Roche cobas" in await saved.text()
    profile = await SheetProfiles(db).get(settings.lab_id, "Roche cobas")
    assert profile.columns == {"patient_id": ["sample no", "lab no"], "flag": ["interp"]}
    assert (profile.day_first, profile.region, profile.layout) == (False, "DE", "wide")
    assert {k: v.value for k, v in profile.flags.items()} == {"pos": "A", "neg": ""}

    page = await (await admin.get("/sheet-profiles/Roche%20cobas")).text()
    assert 'value="sample no, lab no"' in page and "neg = N" in page
    bad = await admin.post("/sheet-profiles", data={**form, "region": "Germany"})
    assert bad.status == 400 and "region" in await bad.text()

    token = await csrf_from(admin, "/sheet-profiles")
    gone = await admin.post("/sheet-profiles/Roche%20cobas/delete", data={"csrf_token": token})
    assert gone.status == 200 and "No profiles yet" in await gone.text()
    audit = await db.audit.find_one({"action": "sheet_profile.deleted"})
    assert audit is not None and audit["actor"] == "admin:admin"
