"""The admin JSON API's routes, `/api/v1`: the one list of operations. `api.setup_api`
registers each on the handler it names (`"part.method"` for a handler part of
`api.ApiHandlers`), and `openapi.document` describes them from their models."""

from __future__ import annotations

from services.gateway.admin_api_models import (
    DeadLetterDecision,
    DeadLetterList,
    DeadLetterView,
    GlanceView,
    NewUser,
    ReplayAll,
    ReplayAllResult,
    TemplateList,
    TemplateMapping,
    TemplateRules,
    TemplateVersionView,
    UserActionBody,
    UserChanged,
    UserList,
)
from services.gateway.api_models import (
    ActionBody,
    AuditList,
    BatchActionBody,
    BatchActionResult,
    BatchCreated,
    BatchList,
    BatchView,
    ReleaseMany,
    ReleaseManyResult,
    ReportList,
    ReportState,
    ReportView,
    RulesSaved,
    TextAgainBody,
)
from services.gateway.audit_pages import AUDIT_FILTERS
from services.gateway.dead_letter_pages import DECISIONS
from services.gateway.openapi import Operation
from services.gateway.profile_api import ProfileDeleted, SheetProfileList
from services.gateway.users import PAGE_ACTIONS
from services.infra.release_rules import ReleaseRules
from services.infra.sheet_profiles import SheetProfile

OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/batches", "create_batch", "Upload a results sheet (`profile`: a sheet "
              "profile's name; `preview=true`: only show what it would make until confirmed; "
              "`template`: the report template of every report of the batch)",
              response=BatchCreated, status=202, multipart_file="file",
              query=("profile", "preview", "template"), errors=(400, 503)),
    Operation("POST", "/batches/{batch_id}/confirm", "preview.confirm_batch", "Confirm a "
              "previewed batch: its reports are made, once", response=BatchView,
              errors=(404, 409)),
    Operation("POST", "/batches/{batch_id}/discard", "preview.discard_batch", "Discard a "
              "previewed batch: nothing of it is made", response=BatchView, errors=(404, 409)),
    Operation("GET", "/batches", "list_batches", "Find batches", response=BatchList,
              query=("status", "q", "uploaded_by", "page"), errors=(400,)),
    Operation("GET", "/batches/{batch_id}", "get_batch", "A batch: rows, problems, reports",
              response=BatchView, errors=(404,)),
    Operation("GET", "/reports", "list_reports", "Find reports", response=ReportList,
              query=("patient_id", "phone", "q", "status", "batch_id", "sampled_from",
                     "sampled_to", "stuck", "made_since", "page"), errors=(400,)),
    Operation("GET", "/glance", "glance.get", "The state at a glance: today's and this "
              "week's reports by status, upload-to-SMS p50/p95, delivery rate, what waits",
              response=GlanceView),
    Operation("GET", "/reports/{report_id}", "get_report", "A report with its versions, "
              "timeline and SMS", response=ReportView, errors=(404,)),
    Operation("POST", "/reports/{report_id}/release", "release", "Release a waiting report",
              body=ActionBody, response=ReportState, errors=(400, 404, 409)),
    Operation("POST", "/reports/{report_id}/withdraw", "withdraw", "Withdraw a report: "
              "nothing more is sent, its link stops working", body=ActionBody,
              response=ReportState, errors=(400, 404, 409)),
    Operation("POST", "/reports/{report_id}/retry", "retry", "Retry a failed or stuck report "
              "from the stage it stopped at", response=ReportState, errors=(404, 409)),
    Operation("POST", "/reports/{report_id}/resend", "resend", "Text the patient again with a "
              "new link, optionally to a corrected number", body=TextAgainBody,
              response=ReportState, status=202, errors=(400, 404, 409)),
    Operation("POST", "/reports/{report_id}/reissue-link", "reissue_link", "Send a new link "
              "(the old one stops working, a lock is cleared)", body=TextAgainBody,
              response=ReportState, status=202, errors=(400, 404, 409)),
    Operation("POST", "/batches/{batch_id}/{action}", "batch_action", "retry-failed, "
              "release-held or cancel a batch", body=BatchActionBody,
              response=BatchActionResult, errors=(400, 404, 409),
              choices=(("action", ("retry-failed", "release-held", "cancel")),)),
    Operation("POST", "/reports/release", "release_many", "Release many waiting reports",
              body=ReleaseMany, response=ReleaseManyResult, errors=(400,)),
    Operation("GET", "/release-rules", "get_rules", "The lab's release rules",
              response=ReleaseRules),
    Operation("PUT", "/release-rules", "put_rules", "Replace the lab's release rules",
              body=ReleaseRules, response=RulesSaved, errors=(400,)),
    Operation("GET", "/users", "users.list_users", "Staff accounts (admins)", response=UserList),
    Operation("POST", "/users", "users.create_user", "Add a member of staff; returns a temporary "
              "password", body=NewUser, response=UserChanged, status=201, errors=(400, 409)),
    Operation("POST", "/users/{username}/{action}", "users.user_action", "set-role, disable, "
              "enable, reset-password, reset-mfa or end-sessions; each ends the user's sessions",
              body=UserActionBody, response=UserChanged, errors=(400, 404, 409),
              choices=(("action", PAGE_ACTIONS),)),
    Operation("GET", "/dead-letters", "dead_letters.list", "Dead letters, newest failure "
              "first, and how many wait per queue", response=DeadLetterList,
              query=("queue", "state", "page"), errors=(400,)),
    Operation("POST", "/dead-letters/{letter_id}/{action}", "dead_letters.decide", "Replay a "
              "dead letter to its queue, or discard it with a reason (audited)",
              body=DeadLetterDecision, response=DeadLetterView, errors=(400, 404, 409),
              choices=(("action", DECISIONS),)),
    Operation("POST", "/dead-letters/replay-all", "dead_letters.replay_all", "Replay every "
              "waiting dead letter (of one queue)", body=ReplayAll, response=ReplayAllResult),
    Operation("GET", "/audit", "list_audit", "The audit trail, newest first (admins)",
              response=AuditList, query=(*AUDIT_FILTERS, "page"), errors=(400,)),
    Operation("GET", "/sheet-profiles", "profiles.list_profiles", "The lab's sheet mapping "
              "profiles", response=SheetProfileList),
    Operation("GET", "/sheet-profiles/{name}", "profiles.get_profile", "One sheet profile",
              response=SheetProfile, errors=(404,)),
    Operation("PUT", "/sheet-profiles/{name}", "profiles.put_profile", "Create or replace a "
              "sheet profile (admins)", body=SheetProfile, response=SheetProfile, errors=(400,)),
    Operation("DELETE", "/sheet-profiles/{name}", "profiles.delete_profile", "Delete a sheet "
              "profile (admins)", response=ProfileDeleted, errors=(404,)),
    Operation("GET", "/templates", "templates.list", "Report templates: versions, the active "
              "one, whether each passed the check (admins)", response=TemplateList),
    Operation("POST", "/templates", "templates.upload", "Upload a .docx as the next version "
              "of `name`; answers its check", response=TemplateVersionView, status=201,
              multipart_file="file", multipart_fields=("name",), errors=(400,)),
    Operation("POST", "/templates/{name}/{version}/activate", "templates.activate", "Make a "
              "version the one new reports use (409: it did not pass the check)",
              response=TemplateVersionView, errors=(404, 409)),
    Operation("PUT", "/templates/{name}/{version}/mapping", "templates.map_fields", "Map a "
              "version's own placeholders to report fields or fixed texts; answers its check "
              "again", body=TemplateMapping, response=TemplateVersionView, errors=(400, 404)),
    Operation("GET", "/templates/{name}/{version}/preview.pdf", "templates.preview", "The "
              "version rendered with sample data, as a PDF (409: it did not pass the check)",
              file_response="application/pdf", errors=(404, 409, 503)),
    Operation("GET", "/template-rules", "templates.get_template_rules", "Which template a "
              "report uses", response=TemplateRules),
    Operation("PUT", "/template-rules", "templates.put_template_rules", "Replace the template "
              "choice rules", body=TemplateRules, response=TemplateRules, errors=(400,)),
)  # fmt: skip
