"""The errors the core raises; the web app maps each to an HTTP status, the CLI to a message.

    GongkaiError
     ├── InputError          422  bad content; `errors` holds (field path, message) pairs
     │    └── (intake.IntakeError is InputError)
     ├── PermissionDenied    403  wrong role, another agency's item, self-approval, who-publishes
     ├── NotFound            404
     └── Conflict            409  the item's state does not allow this transition

Every one of them means nothing was written.
"""

from __future__ import annotations

FieldErrors = list[tuple[str, str]]


class GongkaiError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, errors: FieldErrors | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: FieldErrors = errors or []


class InputError(GongkaiError):
    status = 422
    title = "Invalid item"

    def __init__(self, errors: FieldErrors, detail: str | None = None) -> None:
        text = detail or "; ".join(f"{path}: {message}" for path, message in errors)
        super().__init__(text, errors)


class PermissionDenied(GongkaiError):
    status = 403
    title = "Forbidden"


class NotFound(GongkaiError):
    status = 404
    title = "Not found"


class Conflict(GongkaiError):
    status = 409
    title = "Conflict"
