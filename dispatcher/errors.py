"""Every error the core raises derives from one root; the web app maps each to an HTTP status,
the CLI prints each as `error: …` (and one line per field) and exits 1.

    GongkaiError                     500 unless a subclass says otherwise
     ├── InputError          422   bad content; `errors` holds (field path, message) pairs
     │    ├── AccountError         bad agency or token input (`gongkai agency add`, `token create`)
     │    └── PathError            a withheld path that is malformed or names nothing
     ├── PermissionDenied    403   wrong role, another agency's item, self-approval, who-publishes
     ├── NotFound            404
     ├── Conflict            409   the item's state does not allow this transition
     ├── ConfigurationError        a setting, file or URL the service cannot start with
     │    ├── SettingsError        gongkai.toml or the environment (`settings.py`)
     │    ├── CatalogueError       the catalogue file (`rules/catalogue.py`)
     │    ├── CalendarError        the calendar overrides file (`rules/calendar.py`)
     │    └── DatabaseError        the database URL (`storage/db.py`)
     └── Unavailable         503   a service this process needs is not there
          ├── WriterLockTimeout    another process held SQLite's write lock too long
          └── EmbeddedRedisError   the embedded redis-server would not start or answer

Every one of them means nothing was written. The channels' errors (`channels/base.py`) are a
tree of their own: a channel imports nothing from here, and the dispatcher's job maps them.
"""

from __future__ import annotations

FieldErrors = list[tuple[str, str]]


class GongkaiError(Exception):
    """The root: `detail` is the message a person reads, `errors` the fields it concerns."""

    status = 500
    title = "Internal error"
    retry_after: int | None = None  # seconds worth waiting before trying again, if it helps

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


class AccountError(InputError):
    """Bad agency or token input; nothing was written."""

    title = "Invalid account"

    def __init__(self, detail: str) -> None:
        super().__init__([], detail)


class PathError(InputError):
    """A path into an item is malformed or names nothing in it."""

    def __init__(self, detail: str) -> None:
        super().__init__([], detail)


class PermissionDenied(GongkaiError):
    status = 403
    title = "Forbidden"


class NotFound(GongkaiError):
    status = 404
    title = "Not found"


class Conflict(GongkaiError):
    status = 409
    title = "Conflict"


class ConfigurationError(GongkaiError):
    """The configuration (a setting, a file it names, a URL) cannot be used."""

    title = "Configuration error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class SettingsError(ConfigurationError):
    """The settings cannot be used; the message says which key and why."""


class DatabaseError(ConfigurationError):
    """The database URL cannot be used."""


class Unavailable(GongkaiError):
    """A service this process depends on is missing or does not answer (try again later)."""

    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, when it is worth saying
