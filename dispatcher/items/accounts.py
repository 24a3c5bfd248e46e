"""Agencies and bearer tokens: who may act, for which agency, in which role.

A token is shown once when created and stored only as its SHA-256 (tokens are 256 random bits,
so a fast hash is enough; there is nothing to brute-force). Each token belongs to one agency and
one role, and names its holder: the self-approval rule compares holders, so one person holding
an editor and an approver token still cannot approve their own submission.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.errors import AccountError
from dispatcher.rules.codes import CREDIT_CODE, REGION_CODE
from dispatcher.rules.permissions import ROLES, Actor
from dispatcher.rules.text import line_problem
from dispatcher.storage import ledger
from dispatcher.storage.models import agencies, tokens

_PREFIX = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,39}$")
TOKEN_PREFIX = "gk_"  # noqa: S105 - a marker, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_agency(
    conn: AsyncConnection, code: str, name: str, region: str, index_prefix: str | None = None
) -> None:
    """Register an agency; its 索引号 prefix defaults to its credit code."""
    code, name, prefix = code.strip().upper(), name.strip(), (index_prefix or code).strip()
    if not CREDIT_CODE.match(code):
        raise AccountError(f"--code {code!r} is not an 18-character 统一社会信用代码")
    if not name or len(name) > 200:
        raise AccountError("--name must be 1 to 200 characters")
    if line_problem(name):
        raise AccountError(f"--name {line_problem(name)}")
    name = unicodedata.normalize("NFC", name)
    if not REGION_CODE.match(region):
        raise AccountError(f"--region {region!r} is not a 6-digit administrative division code")
    if not _PREFIX.match(prefix):
        raise AccountError(f"index prefix {prefix!r}: letters, digits, '.', '_' or '-' only")
    try:
        async with conn.begin_nested():
            await conn.execute(
                agencies.insert().values(
                    code=code,
                    name=name,
                    region=region,
                    index_prefix=prefix,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        raise AccountError(f"agency {code} or index prefix {prefix!r} already exists") from None
    await ledger.append(
        conn,
        "agency.added",
        "cli",
        data={"code": code, "name": name, "region": region, "index_prefix": prefix},
    )


async def get_agency(conn: AsyncConnection, code: str) -> sa.Row[tuple[object, ...]] | None:
    return (await conn.execute(sa.select(agencies).where(agencies.c.code == code))).first()


async def create_token(
    conn: AsyncConnection, agency_code: str, role: str, holder: str | None = None
) -> str:
    """Create a token and return it; only its hash is stored."""
    if role not in ROLES:
        raise AccountError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    if await get_agency(conn, agency_code) is None:
        raise AccountError(f"agency {agency_code} is not registered (gongkai agency add)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_hash = hash_token(token)
    # Without a named holder the token is its own holder, so it never matches anyone else.
    holder = (holder or "").strip() or f"token-{token_hash[:12]}"
    if len(holder) > 100:
        raise AccountError("--holder must be at most 100 characters")
    if line_problem(holder):
        raise AccountError(f"--holder {line_problem(holder)}")
    result = await conn.execute(
        tokens.insert().values(
            token_hash=token_hash,
            agency_code=agency_code,
            role=role,
            holder=holder,
            created_at=datetime.now(UTC),
        )
    )
    token_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    await ledger.append(
        conn,
        "token.created",
        "cli",
        data={"token_id": token_id, "agency": agency_code, "role": role, "holder": holder},
    )
    return token


async def authenticate(conn: AsyncConnection, token: str) -> Actor | None:
    """The actor behind a bearer token, or None if it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = (
        await conn.execute(
            sa.select(tokens).where(
                tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return Actor(agency_code=row.agency_code, role=row.role, holder=row.holder, token_id=row.id)


async def list_tokens(
    conn: AsyncConnection, agency_code: str | None = None
) -> list[dict[str, Any]]:
    """Every token (never the token itself): id, agency, role, holder, created, revoked."""
    query = sa.select(tokens).order_by(tokens.c.id)
    if agency_code is not None:
        query = query.where(tokens.c.agency_code == agency_code)
    rows = (await conn.execute(query)).all()
    return [
        {"id": r.id, "agency": r.agency_code, "role": r.role, "holder": r.holder,
         "created_at": r.created_at.isoformat(),
         "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None}
        for r in rows
    ]  # fmt: skip


async def revoke_token(conn: AsyncConnection, token_id: int) -> None:
    """Revoke a token at once (the next request with it is refused); recorded in the ledger."""
    row = (await conn.execute(sa.select(tokens).where(tokens.c.id == token_id))).first()
    if row is None:
        raise AccountError(f"no token {token_id} (gongkai token list shows them)")
    if row.revoked_at is not None:
        raise AccountError(f"token {token_id} was already revoked at {row.revoked_at.isoformat()}")
    await conn.execute(
        tokens.update().where(tokens.c.id == token_id).values(revoked_at=datetime.now(UTC))
    )
    await ledger.append(
        conn, "token.revoked", "cli",
        data={"token_id": token_id, "agency": row.agency_code, "role": row.role,
              "holder": row.holder},
    )  # fmt: skip
