"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when
`TEST_DATABASE_URL` is set), the web app on a real server, agencies and tokens.

PostgreSQL tests run in a database of their own, created for the session and dropped after it;
each test starts from empty tables. SQLite tests copy a database migrated once per session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.http.app import create_app
from dispatcher.items import accounts
from dispatcher.rules.catalogue import Catalogue, load_catalogue
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.settings import Settings, load_settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import metadata
from tests.helpers import CENTER, HOUSING, OTHER, TokenFactory

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = make_url(os.environ["TEST_DATABASE_URL"]).set(drivername="postgresql")
    name = f"gongkai_test_{secrets.token_hex(4)}"
    admin_dsn = base.render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(admin(f'CREATE DATABASE "{name}"'))
    url = base.set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    _run(_migrate(rendered))
    yield rendered
    _run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "gongkai.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    if db.dialect == "postgresql":
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "ledger_head")
        async with db.transaction() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            await conn.execute(
                text("UPDATE ledger_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64}
            )
    yield db
    await db.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        env={"DATABASE_URL": db_url, "GONGKAI_DATA_DIR": str(tmp_path / "var")}, path=None
    )


@pytest.fixture
def rules(settings: Settings) -> Rules:
    return build_rules(settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(create_app(settings, db), host="127.0.0.1")
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def agencies(db: Database) -> list[str]:
    """Three registered agencies: housing bureau, trading centre, finance bureau."""
    async with db.transaction() as conn:
        await accounts.add_agency(conn, HOUSING, "示范市住房和城乡建设局", "990100")
        await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
        await accounts.add_agency(conn, OTHER, "示范市财政局", "990100")
    return [HOUSING, CENTER, OTHER]


@pytest.fixture
def make_token(db: Database, agencies: list[str]) -> TokenFactory:
    """`await make_token("editor", agency=CENTER, holder="张三")` -> Authorization headers."""

    async def make(role: str, agency: str = CENTER, holder: str | None = None) -> dict[str, str]:
        async with db.transaction() as conn:
            token = await accounts.create_token(conn, agency, role, holder)
        return {"Authorization": f"Bearer {token}"}

    return make


# Dispatcher fixtures: a Redis (REDIS_URL, or the embedded one), settings with short retries.


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.ensure()
    embedded.stop()


@pytest.fixture
async def fresh_redis(redis_url: str) -> AsyncIterator[str]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    yield redis_url


@pytest.fixture
def dispatch_env(db_url: str, tmp_path: Path, fresh_redis: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "REDIS_URL": fresh_redis,
        "GONGKAI_DATA_DIR": str(tmp_path / "var"),
        "GONGKAI_SWEEP_INTERVAL": "1",
        "GONGKAI_RETRY_BASE": "0.05",
        "GONGKAI_MAX_ATTEMPTS": "4",
        "GONGKAI_LEASE_SECONDS": "3",
    }


@pytest.fixture
def dispatch_settings(dispatch_env: dict[str, str]) -> Settings:
    return load_settings(env=dispatch_env)


@pytest.fixture
async def api(
    dispatch_settings: Settings, db: Database, fresh_redis: str
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(dispatch_settings, db, redis_url=fresh_redis)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    """The packaged catalogue (the catalogue tests' subject)."""
    return load_catalogue()
