"""Who may do what: roles, the actor behind a request, and who publishes an item.

谁批准谁公开、谁实施谁公开、谁制作谁公开: a category's publisher (catalogue) is the approving
department, the body that carries out the allocation, or the agency that drafted the document (a
policy, a plan, a supervisory decision); the item names that agency, and only that agency may
submit it. Reading is open to every role of the item's own agency; 先审后发 (no self-approval)
is checked by the workflow, which knows who submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import NotFound, PermissionDenied
from dispatcher.rules.catalogue import Category
from dispatcher.rules.states import Role

ROLES = tuple(Role)

# Which roles may do what. Reading is open to every role of the item's own agency.
PERMISSIONS: Mapping[str, tuple[Role, ...]] = {
    "submit": (Role.EDITOR,),
    "revise": (Role.EDITOR,),
    "approve": (Role.APPROVER,),
    "withdraw": (Role.APPROVER,),
    "read": (Role.EDITOR, Role.APPROVER, Role.AUDITOR, Role.ADMIN),
    "retry": (Role.EDITOR, Role.APPROVER),
}

# The item field that names the publishing agency, by the category's publisher role.
PUBLISHER_FIELDS: Mapping[str, str] = {
    "approver": "approving_agency",
    "implementer": "implementing_agency",
    "author": "authoring_agency",
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API token, or an operator at the command line (token_id None)."""

    agency_code: str
    role: str
    holder: str
    token_id: int | None = None

    @property
    def label(self) -> str:
        via = f"token:{self.token_id}" if self.token_id is not None else "cli"
        return f"{self.holder} ({self.role}, {via})"


def require(actor: Actor, action: str, agency_code: str | None = None, missing: str = "") -> None:
    """PermissionDenied unless the actor's role allows `action`; NotFound (`missing`, the same
    answer as for an id that does not exist) if the thing is another agency's: whether another
    agency has an item is not revealed."""
    allowed = PERMISSIONS[action]
    if actor.role not in allowed:
        raise PermissionDenied(
            f"{action} needs the {' or '.join(allowed)} role; yours is {actor.role}"
        )
    if agency_code is not None and agency_code != actor.agency_code:
        raise NotFound(missing or "not found")


def publisher_field(category: Category) -> str:
    """`approving_agency`, `implementing_agency` or `authoring_agency`: the field naming who
    publishes `category`."""
    return PUBLISHER_FIELDS[category.publisher]


def publishing_agency(category: Category, item: Mapping[str, Any]) -> str | None:
    """The agency an item of `category` names as its publisher, if it names one."""
    agency = item.get(publisher_field(category))
    return agency if isinstance(agency, str) else None


def check_publisher(category: Category, item: Mapping[str, Any], agency_code: str) -> None:
    """PermissionDenied unless `agency_code` is the publisher the item names."""
    key = publisher_field(category)
    if publishing_agency(category, item) != agency_code:
        raise PermissionDenied(
            f"谁批准谁公开、谁实施谁公开、谁制作谁公开: {category.name} must be submitted by "
            f"the {key} named on the item, not by agency {agency_code}",
            [(key, "is not your agency")],
        )
