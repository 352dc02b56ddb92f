"""Who may do what in MongoDB: one role per service, least privilege per collection (pure).

`GRANTS` is the table; `init_script()` turns it into the mongosh script that compose's
`mongodb-init` runs (`deploy/mongodb/init-users.js`, regenerated with `resultflow database
users-script`; a test keeps the file equal to it). The writers of each collection are its
owner module's callers (`owners.OWNERS`, docs/data-model.md). Indexes are created by the
setup job (`resultflow database indexes`, as `resultflow-setup`), never by a service: the
right to create an index includes a TTL index, which deletes documents.
"""

from __future__ import annotations

import json

from services.infra.broker_access import USER_PREFIX

FIND, INSERT, UPDATE, REMOVE = "find", "insert", "update", "remove"
# GridFS lists a new bucket's indexes before its first upload (they exist: the setup job made
# them, so it creates none).
LIST_INDEXES = "listIndexes"

APPEND_ONLY = (FIND, INSERT)  # the audit chain reads its newest entry, then inserts the next
OWN_DATA = (FIND, INSERT, UPDATE, REMOVE)
FILES_READ = {"fs.files": (FIND,), "fs.chunks": (FIND,)}
FILES_WRITE = {"fs.files": (FIND, INSERT, LIST_INDEXES), "fs.chunks": (FIND, INSERT, LIST_INDEXES)}

GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {
        "reports": (FIND, INSERT, UPDATE),  # creates reports; supersedes older versions
        "message_outbox": OWN_DATA,  # stored with each change, deleted once published
        "batches": (FIND, UPDATE),  # marks a batch ingested or failed
        "rejected_messages": (FIND, INSERT, UPDATE),  # the reason is upserted
        "audit": APPEND_ONLY,  # corrections
        **FILES_READ,  # the uploaded sheet
        "sheet_profiles": (FIND,),  # the profile chosen at upload
    },
    "render": {
        "reports": (FIND, UPDATE),
        "message_outbox": OWN_DATA,  # stored with each change, deleted once published
        "templates": (FIND,),
        "template_rules": (FIND,),  # which template a report uses
        **FILES_WRITE,  # the .docx
    },
    "convert": {  # reads the .docx, stores the PDF
        "reports": (FIND, UPDATE),
        "message_outbox": OWN_DATA,  # stored with each change, deleted once published
        **FILES_WRITE,
    },
    "notify": {
        "reports": (FIND, UPDATE),  # status, access link, holds
        "message_outbox": OWN_DATA,  # stored with each change, deleted once published
        "notifications": (FIND, INSERT, UPDATE),
        "outbox": (INSERT,),  # the development SMS provider
        "release_rules": (FIND,),
        "audit": APPEND_ONLY,  # SMS sent or refused
        "sms_opt_outs": (FIND, INSERT, UPDATE),  # the provider's own opt-out error (21610)
        "access_codes": (FIND, INSERT, UPDATE),  # the hash of each texted one-time code
    },
    "gateway": {
        "reports": (FIND, UPDATE),  # staff release/withdraw/retry, portal check attempts
        "message_outbox": OWN_DATA,  # stored with each change, deleted once published
        "batches": (FIND, INSERT, UPDATE),
        "audit": APPEND_ONLY,  # never update or remove: the trail is append-only
        "release_rules": (FIND, INSERT, UPDATE),
        "notifications": (FIND,),
        "outbox": (FIND,),
        "users": (FIND, INSERT, UPDATE),  # disabled, never deleted
        "api_tokens": (FIND, INSERT, UPDATE),  # revoked, never deleted
        "sessions": OWN_DATA,
        "login_throttle": OWN_DATA,
        "portal_sessions": OWN_DATA,
        "access_codes": (FIND, INSERT, UPDATE),  # code requests counted, codes spent
        "sms_opt_outs": (FIND, INSERT, UPDATE),  # STOP / START replies (inbound webhooks)
        "dead_letters": (FIND, INSERT, UPDATE),  # kept, replayed or discarded; never removed
        "templates": (FIND, INSERT, UPDATE),  # versions are kept, never removed
        "template_rules": (FIND, INSERT, UPDATE),  # replaced whole by an admin
        "sheet_profiles": OWN_DATA,  # edited and deleted by admins (audited)
        **FILES_WRITE,  # uploads and templates; reads PDFs for the portal
    },
}
SERVICES = tuple(GRANTS)
# The setup job and operators' CLI: indexes, and whatever an operator does by hand.
SETUP = "setup"
SETUP_ROLES = ("readWrite", "dbAdmin")


def username(principal: str) -> str:
    return f"{USER_PREFIX}{principal}"


def password_variable(principal: str) -> str:
    """The environment variable the init script reads a user's password from."""
    return f"MONGODB_PASSWORD_{principal.upper()}"


def privileges(service: str) -> list[tuple[str, list[str]]]:
    """(collection, actions) pairs of a service's role, in a stable order."""
    return [(collection, sorted(actions)) for collection, actions in GRANTS[service].items()]


def init_script() -> str:
    """The mongosh script that creates (or updates) every role and user; run as root."""
    table = "\n".join(
        f"  {json.dumps(username(service))}: {{\n"
        f"    password: {json.dumps(password_variable(service))},\n"
        "    privileges: [\n"
        + "".join(
            f"      [{json.dumps(collection)}, {json.dumps(actions)}],\n"
            for collection, actions in privileges(service)
        )
        + "    ],\n  },"
        for service in SERVICES
    )
    setup_roles = ", ".join(f"{{role: {json.dumps(role)}, db: dbName}}" for role in SETUP_ROLES)
    return f"""\
// Generated by `resultflow database users-script` from services/infra/database_access.py:
// edit that table, not this file. Run by compose's mongodb-init as root, on every start:
// creates or updates one role and one user per service (passwords from the environment,
// so changing one there and re-running this rotates it) and the setup user.
const dbName = process.env.RESULTFLOW_MONGODB_DATABASE || "resultflow";
const admin = db.getSiblingDB("admin");

function secret(variable) {{
  const value = process.env[variable];
  if (!value) throw new Error(`set ${{variable}}`);
  return value;
}}

function putRole(name, privileges) {{
  if (admin.getRole(name)) admin.updateRole(name, {{privileges, roles: []}});
  else admin.createRole({{role: name, privileges, roles: []}});
}}

function putUser(name, password, roles) {{
  if (admin.getUser(name)) admin.updateUser(name, {{pwd: password, roles}});
  else admin.createUser({{user: name, pwd: password, roles}});
}}

const services = {{
{table}
}};

for (const [name, service] of Object.entries(services)) {{
  const privileges = service.privileges.map(([collection, actions]) => (
    {{resource: {{db: dbName, collection}}, actions}}
  ));
  putRole(name, privileges);
  putUser(name, secret(service.password), [{{role: name, db: "admin"}}]);
}}

putUser({json.dumps(username(SETUP))}, secret({json.dumps(password_variable(SETUP))}), [
  {setup_roles},
]);
print(`roles and users ready for database ${{dbName}}`);
"""
