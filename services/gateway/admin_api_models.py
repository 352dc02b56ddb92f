"""Admin API models of the lab's administration: staff accounts and dead letters (the rest
of the API's models are in `api_models`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field

from services.gateway.api_models import ApiModel, RequestModel
from services.gateway.permissions import Role
from services.infra.template_rules import TemplateRule


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


class TemplateMapping(RequestModel):
    mapping: dict[str, dict[str, str]] = Field(
        description='The version\'s own placeholder -> {"field": a report field} or '
        '{"text": a fixed text}; placeholders left out are not mapped.'
    )


class TemplateRuleView(RequestModel):
    test: str = Field("", max_length=100, description="A test or panel name; empty: any.")
    language: str = Field("", max_length=12, description="`fr` matches `fr-CA`; empty: any.")
    template: str = Field(description="The template a matching report uses.")


class TemplateRules(RequestModel):
    rules: list[TemplateRuleView] = Field(
        max_length=100, description="The first rule a report matches wins; else `default`."
    )

    def stored(self) -> list[TemplateRule]:
        return [
            TemplateRule(test=r.test, language=r.language, template=r.template) for r in self.rules
        ]


class TemplateSummary(ApiModel):
    name: str
    active: int | None = Field(None, description="The version new reports use.")
    versions: list[int] = Field(description="Newest first.")
    lint_ok: dict[str, bool] = Field(description="Version (as text) -> whether it passed.")


class TemplateList(ApiModel):
    items: list[TemplateSummary]


class GlanceDay(ApiModel):
    day: date
    reports: dict[str, int] = Field(description="Reports made that day: sent, in progress, "
                                    "waiting, failed, other.")  # fmt: skip


class GlanceView(ApiModel):
    """The dashboard's state at a glance; days and weeks in the lab's time zone."""

    today_since: datetime
    week_since: datetime = Field(description="Monday 00:00 in the lab's time zone.")
    today: dict[str, int] = Field(description="Status -> reports made today.")
    week: dict[str, int] = Field(description="Status -> reports made this week.")
    upload_to_sms_p50_seconds: float | None
    upload_to_sms_p95_seconds: float | None
    delivery_rate: float | None = Field(description="Delivered / SMS with a final outcome.")
    failed_this_week: int
    held: int
    needs_attention: int
    stuck: int
    dead_letters: int
    unknown_sms: int = Field(description="SMS whose outcome is unknown: a person must check.")
    days: list[GlanceDay] = Field(description="The last seven days, oldest first.")

    @classmethod
    def of(cls, glance: Any) -> GlanceView:
        return cls(
            today_since=glance.today_since,
            week_since=glance.week_since,
            today=glance.today,
            week=glance.week,
            upload_to_sms_p50_seconds=glance.upload_to_sms_p50,
            upload_to_sms_p95_seconds=glance.upload_to_sms_p95,
            delivery_rate=glance.delivery_rate,
            failed_this_week=glance.failed,
            held=glance.held,
            needs_attention=glance.needs_attention,
            stuck=glance.stuck,
            dead_letters=glance.dead_letters,
            unknown_sms=glance.unknown_sms,
            days=[GlanceDay(day=d.day, reports=d.groups) for d in glance.days],
        )
