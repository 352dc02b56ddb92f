"""The admin API's sheet mapping profiles (`api_routes.OPERATIONS` names them
`profiles.<method>`): list, read, save (create or replace) and delete, with the same store and
audit actions (`sheet_profile.saved`, `sheet_profile.deleted`) as the dashboard's pages."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from services.gateway.web import USER, body, client_detail, json_error, ok
from services.infra.audit import Audit, staff
from services.infra.service import Resources
from services.infra.sheet_profiles import ProfileNotFound, SheetProfile, SheetProfiles


class SheetProfileList(BaseModel):
    items: list[SheetProfile] = Field(description="The lab's sheet profiles, by name.")


class ProfileDeleted(BaseModel):
    name: str
    deleted: bool = True


class ProfileApi:
    def __init__(self, resources: Resources) -> None:
        self._store = SheetProfiles(resources.db)
        self._audit = Audit(resources.db)
        self._lab_id = resources.settings.lab_id

    async def list_profiles(self, request: web.Request) -> web.StreamResponse:
        return ok(SheetProfileList(items=await self._store.list(self._lab_id)))

    async def get_profile(self, request: web.Request) -> web.StreamResponse:
        try:
            return ok(await self._store.get(self._lab_id, request.match_info["name"]))
        except ProfileNotFound as error:
            return json_error(404, "not_found", str(error))

    async def put_profile(self, request: web.Request) -> web.StreamResponse:
        profile: SheetProfile = await body(request, SheetProfile)
        if profile.name != request.match_info["name"]:
            return json_error(400, "invalid", "The body's `name` must be the one in the path.")
        await self._store.save(self._lab_id, profile, request[USER])
        detail = {**client_detail(request), "profile": profile.name}
        await self._audit.write(staff(request[USER]), "sheet_profile.saved", None, detail)
        return ok(profile)

    async def delete_profile(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not await self._store.delete(self._lab_id, name):
            return json_error(404, "not_found", f"sheet profile '{name}' is not known")
        detail = {**client_detail(request), "profile": name}
        await self._audit.write(staff(request[USER]), "sheet_profile.deleted", None, detail)
        return ok(ProfileDeleted(name=name))
