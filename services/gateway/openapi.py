"""The OpenAPI 3.1 document of the admin API, generated from its operations and their pydantic
models: nothing in it is written by hand, so it cannot drift from what the API does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.gateway.api_models import ErrorBody

REF = "#/components/schemas/{model}"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "The request is not valid: `detail` says what to change.",
    401: "No valid bearer token or session.",
    403: "Not allowed.",
    404: "No such thing.",
    409: "The report's state forbids it: `detail` says why. Nothing changed.",
    503: "Could not be done now: try again later.",
}
BINARY = {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below the API's prefix, with {parameters}
    handler: str  # the ApiHandlers method, or "part.method" for a part's (`users.list_users`)
    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    multipart_file: str = ""  # the form field of an uploaded file
    multipart_fields: tuple[str, ...] = ()  # text fields sent with it
    errors: tuple[int, ...] = ()
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # path parameters with fixed values
    file_response: str = ""  # the media type of a file answer (`application/pdf`), if one

    def bound_to(self, handlers: object) -> Any:
        """The handler method itself, on `handlers` or the part of it the name says."""
        target = handlers
        for name in self.handler.split("."):
            target = getattr(target, name)
        return target

    def route(self) -> str:
        """The aiohttp route: parameters with fixed values match only those."""
        path = self.path
        for name, values in self.choices:
            path = path.replace(f"{{{name}}}", f"{{{name}:{'|'.join(values)}}}")
        return path


def _schemas(operations: tuple[Operation, ...]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorBody, "serialization")
    ]
    for operation in operations:
        if operation.body is not None:
            models.append((operation.body, "validation"))
        if operation.response is not None:
            models.append((operation.response, "serialization"))
    _, top = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    return dict(top.get("$defs", {}))


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(operation: Operation) -> dict[str, Any]:
    fixed = dict(operation.choices)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", **({"enum": list(fixed[name])} if name in fixed else {})},
        }
        for name in re.findall(r"{(\w+)}", operation.path)
    ] + [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in operation.query
    ]
    responses: dict[str, Any] = {
        str(operation.status): {
            "description": STATUS_TEXT.get(operation.status, "OK"),
            **(
                {"content": {"application/json": {"schema": _ref(operation.response)}}}
                if operation.response
                else {}
            ),
            **(
                {"content": {operation.file_response: {"schema": BINARY}}}
                if operation.file_response
                else {}
            ),
        }
    }
    for status in (*operation.errors, 401):
        responses[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    spec: dict[str, Any] = {
        "operationId": operation.handler.rsplit(".", 1)[-1],
        "summary": operation.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if operation.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    if operation.multipart_file:
        field = operation.multipart_file
        spec["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            field: BINARY,
                            **{f: {"type": "string"} for f in operation.multipart_fields},
                        },
                        "required": [field, *operation.multipart_fields],
                    }
                }
            },
        }
    return spec


def document(operations: tuple[Operation, ...], prefix: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for operation in operations:
        paths.setdefault(prefix + operation.path, {})[operation.method.lower()] = _operation(
            operation
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ResultFlow admin API",
            "version": "1",
            "description": "What lab staff do in the dashboard. Authenticate with "
            "`Authorization: Bearer <token>` (`resultflow tokens create USERNAME`).",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(operations),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
