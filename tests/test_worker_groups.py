"""Workers apart: the channels that write the site directory (website, feeds) have a queue of
their own, so `gongkai worker --channels website,feeds` runs where the site is and `gongkai
worker --except website,feeds` elsewhere; each takes only the jobs it can do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channels.media.settings import new_secret
from dispatcher.dispatch import queue
from dispatcher.dispatch.worker import build_worker, worker_groups
from dispatcher.errors import InputError
from dispatcher.ops.cli import main
from dispatcher.settings import Settings, load_settings
from dispatcher.storage.db import Database
from tests.fakes import Script, scripted_registry
from tests.helpers import Client, TokenFactory, approve_via_api, statuses, wait_until

CHANNELS = ["website", "feeds", "media:a"]


@pytest.fixture
def dispatch_env(dispatch_env: dict[str, str]) -> dict[str, str]:
    media = {"GONGKAI_MEDIA_A_URL": "http://127.0.0.1:9/never",
             "GONGKAI_MEDIA_A_SECRET": new_secret()}  # fmt: skip
    return {**dispatch_env, "GONGKAI_CHANNELS": ",".join(CHANNELS), **media}


def test_a_worker_takes_whole_queues(dispatch_settings: Settings) -> None:
    assert worker_groups(dispatch_settings, None, None) == [queue.SITE, queue.REMOTE]
    assert worker_groups(dispatch_settings, "website,feeds", None) == [queue.SITE]
    assert worker_groups(dispatch_settings, None, "website, feeds") == [queue.REMOTE]
    assert worker_groups(dispatch_settings, "media:a", None) == [queue.REMOTE]
    assert worker_groups(dispatch_settings, None, ",".join(CHANNELS)) == []  # it waits
    for only, but, message in (
        ("website", None, "share a queue"),
        (None, "feeds", "share a queue"),
        ("wechat", None, "not enabled"),
        (",", None, "comma-separated"),
    ):
        with pytest.raises(InputError, match=message):
            worker_groups(dispatch_settings, only, but)
    alone = load_settings(env={"GONGKAI_CHANNELS": "website,feeds"})
    assert worker_groups(alone, None, None) == [queue.SITE]  # no remote channel: no queue


@contextlib.asynccontextmanager
async def worker(settings: Settings, group: str, scripts: dict[str, Script]) -> AsyncIterator[None]:
    found = build_worker(settings, settings.storage.redis_url, scripted_registry(scripts),
                         group=group, handle_signals=False)  # fmt: skip
    task = asyncio.create_task(found.async_run())
    try:
        yield
    finally:
        await found.stop(task)


async def test_each_worker_does_its_own_group_s_deliveries(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    for n in range(3):
        await approve_via_api(api, make_token, title=f"公示{n}", channels=CHANNELS,
                              project_code=f"E99010000077{n:05d}")  # fmt: skip
    site = {"website": Script(), "feeds": Script()}
    remote = {"media": Script()}

    async def states() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in await statuses(db):
            found.setdefault(row[2], set()).add(row[4])
        return found

    async with worker(dispatch_settings, queue.SITE, site):
        await wait_until(lambda: len(site["website"].calls) == 3 and len(site["feeds"].calls) == 3)

        async def site_done() -> bool:
            now = await states()
            return now["website"] == now["feeds"] == {"published"}

        await wait_until(site_done)
        # The outlet's jobs wait in the remote queue, untouched; the site's has no delivery left.
        pool = await queue.connect(dispatch_settings.storage.redis_url)
        try:
            waiting = await pool.zrange(queue.QUEUE, 0, -1)
            assert len([key for key in waiting if key.endswith(b":media:a")]) == 3
            site_jobs = await pool.zrange(queue.SITE_QUEUE, 0, -1)
            assert not [key for key in site_jobs if key[:1].isdigit()]  # item:version:channel
        finally:
            await pool.aclose()
        assert (await states())["media:a"] == {"pending"} and not remote["media"].calls
    async with worker(dispatch_settings, queue.REMOTE, remote):

        async def remote_done() -> bool:
            return (await states())["media:a"] == {"published"}

        await wait_until(remote_done)
    assert len(remote["media"].calls) == 3 and len(site["website"].calls) == 3
    assert {key.rsplit(":", 1)[-1] for _, key in remote["media"].calls} == {"a"}


def test_the_command_refuses_half_a_queue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("GONGKAI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GONGKAI_CHANNELS", "website,feeds")
    assert main(["worker", "--channels", "website"]) == 1
    assert "website, feeds share a queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main(["worker", "--channels", "website,feeds", "--except", "feeds"])
