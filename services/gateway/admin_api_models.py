"""Admin API models of the lab's administration: staff accounts and dead letters (the rest
of the API's models are in `api_models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.gateway.api_models import ApiModel, RequestModel
from services.gateway.permissions import Role


class UserView(ApiModel):
    username: str
    role: str
    disabled: bool = False
    must_change_password: bool = Field(False, description="A reset: a new one at next login.")
    mfa_enrolled: bool = Field(False, description="Has set up a second factor (TOTP).")
    created_at: datetime | None = None
    last_login_at: datetime | None = None

    @classmethod
    def of(cls, user: dict[str, Any]) -> UserView:
        return cls.model_validate({**user, "mfa_enrolled": bool(user.get("mfa"))})


class UserList(ApiModel):
    items: list[UserView]


class NewUser(RequestModel):
    username: str = Field(max_length=64, description="Letters, digits, '.', '_', '@' or '-'.")
    role: Role


class UserActionBody(RequestModel):
    role: Role | None = Field(None, description="The new role, for set-role.")


class UserChanged(ApiModel):
    username: str
    temporary_password: str | None = Field(
        None,
        description="Made by create and reset-password, shown only here: the user chooses "
        "a new password when they next sign in.",
    )


class DeadLetterView(ApiModel):
    id: str = Field(validation_alias="_id")
    queue: str = Field(description="The queue it failed in.")
    reason: str
    deaths: int = Field(description="How often it was dead-lettered.")
    first_failed_at: datetime
    last_failed_at: datetime
    report_id: str | None
    batch_id: str | None
    state: str = Field(description="dead (waiting for a person), replayed or discarded")
    decided_by: str | None = None
    decision: str | None = Field(None, description="Why it was discarded.")


class DeadLetterList(ApiModel):
    items: list[DeadLetterView]
    counts: dict[str, int] = Field(description="Dead letters waiting, per queue.")
    page: int
    next_page: int | None


class DeadLetterDecision(RequestModel):
    reason: str = Field("", max_length=500, description="Required to discard.")


class ReplayAll(RequestModel):
    queue: str | None = Field(None, description="Only this queue's; all queues when absent.")


class ReplayAllResult(ApiModel):
    replayed: int


class TemplateLint(ApiModel):
    ok: bool = Field(description="Passed the check: the version may be made active.")
    placeholders: list[str] = Field(description="Every field the template uses.")
    unknown: list[str] = Field(description="Used but neither a report field nor mapped.")
    missing_required: list[str] = Field(description="Fields every report must show.")
    problems: list[dict[str, str]] = Field(description="{part, reason}: what to fix.")


class TemplateVersionView(ApiModel):
    name: str
    version: int
    filename: str
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    active: bool
    lint: TemplateLint
    mapping: dict[str, dict[str, str]] = Field(description="placeholder -> {field} or {text}")


class TemplateSummary(ApiModel):
    name: str
    active: int | None = Field(None, description="The version new reports use.")
    versions: list[int] = Field(description="Newest first.")
    lint_ok: dict[str, bool] = Field(description="Version (as text) -> whether it passed.")


class TemplateList(ApiModel):
    items: list[TemplateSummary]
