"""The probe's faults, replayed against real processes (issue 12): an attacker's and bad luck's
findings that need a running `gongkai serve` on the embedded defaults. Each case ends the same
way: every item approved (answered 200) is published on every channel, nothing twice, and
`gongkai ledger verify` finds the ledger intact.

- the embedded Redis killed under `serve`, and under `serve --no-worker` beside `gongkai worker`;
- `serve` killed with SIGKILL in the middle of a burst of approvals, then started again;
- the embedded Redis's disk full (its append-only file is `/dev/full`);
- a corrupt feeds state file;
- another program holding an SQLite write transaction (a `sqlite3` shell).

Every wait is bounded; every process is stopped (SIGTERM, then SIGKILL) on the way out."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dispatcher.dispatch.redis_server import process_runs
from tests.helpers import bid_candidates, free_port
from tests.processes import SCRIPT, call, cli, env_for, press_office, published, until

BURST = 24


@dataclass
class Office:
    """A press office on a data directory: its tokens, its `serve` processes and their logs."""

    tmp_path: Path
    env: dict[str, str]
    base: str
    editor: str
    approver: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy
            process = subprocess.Popen(  # noqa: S603 - our own console script
                [str(SCRIPT), *args], cwd=self.tmp_path, env=self.env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def release(self, title: str, **changes: Any) -> int:
        """Submit and approve an item; its id."""
        status, created = call(f"{self.base}/api/v1/items", self.editor,
                               bid_candidates(title=title, **changes))  # fmt: skip
        assert status == 201, created
        status, approved = call(f"{self.base}/api/v1/items/{created['id']}/approve",
                                self.approver, {})  # fmt: skip
        assert status == 200, approved
        return int(created["id"])

    def all_published(self, ids: list[int], seconds: float = 90) -> None:
        """Every one published on every channel, nothing twice, the ledger intact."""
        for item_id in ids:

            def done(i: int = item_id) -> bool:
                return published(self.base, self.approver, i)

            until(done, seconds, f"item {item_id} published everywhere")
        status, page = call(f"{self.base}/api/v1/deliveries?limit=200", self.approver)
        assert status == 200
        keys = [(d["item_id"], d["version"], d["channel"]) for d in page["deliveries"]]
        assert len(keys) == len(set(keys))  # one delivery per version and channel
        assert cli(self.tmp_path, self.env, "ledger", "verify").startswith("ledger intact")

    def ready(self) -> dict[str, Any]:
        status, body = call(f"{self.base}/readyz")
        return {"status": status, **(body or {})}

    def stop(self) -> list[int | None]:
        for process in reversed(self.processes):  # workers first, then the Redis's owner
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        return [p.returncode for p in self.processes]


@contextmanager
def office(tmp_path: Path, **env: str) -> Iterator[Office]:
    port = free_port()
    environment = {**env_for(tmp_path, port), **env}
    editor, approver = press_office(tmp_path, environment)
    place = Office(tmp_path, environment, f"http://127.0.0.1:{port}", editor, approver)
    try:
        yield place
    finally:
        place.stop()


def _answers(place: Office) -> None:
    until(lambda: call(f"{place.base}/healthz")[0] == 200, 30, "serve answers")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("split", [False, True], ids=["serve", "serve-no-worker-and-worker"])
def test_redis_killed_under_serve(tmp_path: Path, split: bool) -> None:
    """The API answers throughout, the embedded Redis is started again from its append-only
    file, the worker reconnects (or is started again), and an item approved afterwards is
    published."""
    with office(tmp_path) as place:
        place.start("serve", "serve", *(["--no-worker"] if split else []))
        _answers(place)
        if split:  # a worker of its own, on the Redis `serve` started
            place.start("worker", "worker")
        first = place.release("杀死Redis之前的公示", channels=["website"])
        place.all_published([first], 60)

        pidfile = tmp_path / "var" / "redis" / "redis.pid"
        killed = int(pidfile.read_text())
        os.kill(killed, signal.SIGKILL)
        until(lambda: pidfile.is_file() and int(pidfile.read_text() or 0) not in (0, killed),
              30, "a new embedded Redis")  # fmt: skip
        assert all(p.poll() is None for p in place.processes), "a process exited"
        assert call(f"{place.base}/healthz")[0] == 200
        until(lambda: place.ready()["status"] == 200, 30, "ready again")

        second = place.release("Redis重启之后的公示", channels=["website"])
        place.all_published([first, second])
        codes = place.stop()
    assert codes == [0] * len(codes), place.log("serve")
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # stopped on the way out


@pytest.mark.timeout(240)
def test_serve_killed_mid_burst(tmp_path: Path) -> None:
    """A delivery the killed worker held waits for its lease to run out (10 s here), then the
    sweeper hands it to the new worker; the second `serve` adopts the Redis the first left."""
    with office(tmp_path, GONGKAI_LEASE_SECONDS="10") as place:
        first = place.start("first", "serve")
        _answers(place)
        approved: list[int] = []

        def burst() -> None:
            for n in range(BURST):
                item = bid_candidates(title=f"第{n}号公示", project_code=f"E99010000055{n:05d}")
                status, created = call(f"{place.base}/api/v1/items", place.editor, item)
                if status != 201:
                    return  # serve is gone
                status, _ = call(f"{place.base}/api/v1/items/{created['id']}/approve",
                                 place.approver, {})  # fmt: skip
                if status != 200:
                    return
                approved.append(int(created["id"]))

        sender = threading.Thread(target=burst)
        sender.start()
        until(lambda: len(approved) >= BURST // 3, 60, "a third of the burst approved")
        first.send_signal(signal.SIGKILL)  # mid-burst: jobs in flight, deliveries leased
        first.wait(timeout=10)
        orphan = int((tmp_path / "var" / "redis" / "redis.pid").read_text())  # still running
        sender.join(timeout=60)
        assert not sender.is_alive()
        assert BURST // 3 <= len(approved) < BURST

        second = place.start("second", "serve")  # finds the orphaned Redis and adopts it
        _answers(place)
        place.all_published(approved, 120)
        place.stop()
    assert second.returncode == 0, place.log("second")
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
    assert orphan > 0 and not process_runs(orphan)  # gone (or a zombie nobody reaps)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_redis_disk_full_under_serve(tmp_path: Path) -> None:
    """Reported on /readyz and in the log, not by exiting; approvals are answered and kept in
    the database; once Redis runs on a disk with room, they are published."""
    server_dir = tmp_path / "var" / "redis"
    server_dir.mkdir(parents=True, mode=0o700)
    (server_dir / "appendonly.aof").symlink_to("/dev/full")  # every write: ENOSPC
    with office(tmp_path) as place:
        place.start("serve", "serve")
        _answers(place)
        until(lambda: "refusing writes" in str(place.ready()), 30, "/readyz says so")
        assert place.ready()["status"] == 503
        until(lambda: "cannot write its append-only file" in place.log("serve"), 10, "logged")
        during = place.release("磁盘已满时批准的公示")  # answered, kept in the database
        assert place.processes[0].poll() is None

        # Room again. The server's file stays /dev/full until it is started again, as an
        # operator would: the watchdog starts a new one, the sweeper enqueues what waited.
        (server_dir / "appendonly.aof").unlink()
        os.kill(int((server_dir / "redis.pid").read_text()), signal.SIGKILL)
        until(lambda: place.ready()["status"] == 200, 30, "ready again")
        after = place.release("磁盘恢复之后的公示")
        place.all_published([during, after])
        assert place.stop() == [0]


@pytest.mark.timeout(180)
def test_corrupt_feeds_state_under_serve(tmp_path: Path) -> None:
    """The next item's feeds delivery fails, naming the file and the way out; /readyz and the
    log say so; `gongkai feeds rebuild` (while serve runs) and a retry publish it."""
    with office(tmp_path) as place:
        place.start("serve", "serve")
        _answers(place)
        first = place.release("订阅源状态损坏之前的公示")
        place.all_published([first])
        state = tmp_path / "var" / "state" / "feeds" / "all.json"
        state.write_bytes(state.read_bytes()[:40])  # truncated, as by a full disk

        second = place.release("订阅源状态损坏之后的公示", project_code="E9901000007777777")

        def failed() -> list[dict[str, Any]]:
            item = call(f"{place.base}/api/v1/items/{second}", place.approver)[1]
            return [d for d in item["versions"][0]["deliveries"] if d["status"] == "failed"]

        until(lambda: bool(failed()), 60, "the feeds delivery failed")
        [delivery] = failed()
        assert delivery["channel"] == "feeds"
        checks = place.ready()
        assert (
            checks["status"] == 200
            and "all.json is unreadable" in checks["checks"]["channel state"]
        )
        assert "gongkai feeds rebuild" in place.log("serve")

        assert "feeds" in cli(tmp_path, place.env, "feeds", "rebuild")
        status, body = call(f"{place.base}/api/v1/deliveries/{delivery['id']}/retry",
                            place.editor, {})  # fmt: skip
        assert status == 200, body
        place.all_published([first, second])
        assert place.ready()["checks"]["channel state"] == "ok"
        assert place.stop() == [0]


@pytest.mark.timeout(120)
def test_outside_sqlite_writer_under_serve(tmp_path: Path) -> None:
    """The API keeps answering while another program holds the database's write lock; the
    waiting write goes through once it lets go."""
    with office(tmp_path) as place:
        place.start("serve", "serve")
        _answers(place)
        outside = sqlite3.connect(tmp_path / "var" / "gongkai.db", isolation_level=None)
        outside.execute("BEGIN IMMEDIATE")  # what a `sqlite3` shell holding a write does
        outcome: list[tuple[int, Any]] = []
        item = bid_candidates(title="外部写入期间提交的公示")
        submit = threading.Thread(
            target=lambda: outcome.append(call(f"{place.base}/api/v1/items", place.editor, item))
        )
        try:
            submit.start()
            assert call(f"{place.base}/healthz")[0] == 200
            assert place.ready()["checks"]["database"] == "ok"  # reads go on
            assert submit.is_alive()  # the write waits (up to 10 s, then 503 + Retry-After)
        finally:
            outside.execute("COMMIT")
            outside.close()
        submit.join(timeout=30)
        [(status, created)] = outcome
        assert status == 201, created
        status, approved = call(f"{place.base}/api/v1/items/{created['id']}/approve",
                                place.approver, {})  # fmt: skip
        assert status == 200, approved
        place.all_published([int(created["id"])])
        assert place.stop() == [0]
