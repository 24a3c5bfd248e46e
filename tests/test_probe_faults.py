"""The probe's bad luck, replayed (issue 12): `gongkai serve` killed with SIGKILL in the middle of
a burst of approvals, then started again. Every approval that was answered 200 is published on
every channel once its lease runs out, nothing twice, and the ledger verifies. Real processes
on the embedded defaults; every wait is bounded."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest

from dispatcher.dispatch.redis_server import process_runs
from tests.helpers import bid_candidates, free_port
from tests.processes import SCRIPT, call, cli, env_for, press_office, published, until

BURST = 24


def _serve(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy
        return subprocess.Popen(  # noqa: S603 - our own console script
            [str(SCRIPT), "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.mark.timeout(240)
def test_a_killed_serve_loses_no_approved_item(tmp_path: Path) -> None:
    port = free_port()
    # A delivery the killed worker held waits for its lease to run out: 10 s here (120 s by
    # default), then the sweeper hands it to the new worker.
    env = {**env_for(tmp_path, port), "GONGKAI_LEASE_SECONDS": "10"}
    base = f"http://127.0.0.1:{port}"
    editor, approver = press_office(tmp_path, env)
    first = _serve(tmp_path, env, "first")
    second: subprocess.Popen[bytes] | None = None
    orphan = 0
    redis_pid = tmp_path / "var" / "redis" / "redis.pid"
    try:
        until(lambda: call(f"{base}/healthz")[0] == 200, 30, "serve answers")
        approved: list[int] = []

        def burst() -> None:
            for n in range(BURST):
                item = bid_candidates(title=f"第{n}号公示", project_code=f"E99010000055{n:05d}")
                status, created = call(f"{base}/api/v1/items", editor, item)
                if status != 201:
                    return  # serve is gone
                status, _ = call(f"{base}/api/v1/items/{created['id']}/approve", approver, {})
                if status != 200:
                    return
                approved.append(int(created["id"]))

        sender = threading.Thread(target=burst)
        sender.start()
        until(lambda: len(approved) >= BURST // 3, 60, "a third of the burst approved")
        first.send_signal(signal.SIGKILL)  # mid-burst: jobs in flight, deliveries leased
        first.wait(timeout=10)
        orphan = int(redis_pid.read_text())  # the Redis the killed serve started, still running
        sender.join(timeout=60)
        assert not sender.is_alive()
        assert BURST // 3 <= len(approved) < BURST

        second = _serve(tmp_path, env, "second")  # finds the orphaned Redis and adopts it
        until(lambda: call(f"{base}/healthz")[0] == 200, 30, "serve answers again")
        for item_id in approved:
            until(lambda i=item_id: published(base, approver, i), 120, f"item {item_id}")
        assert cli(tmp_path, env, "ledger", "verify").startswith("ledger intact")
        status, page = call(f"{base}/api/v1/deliveries?limit=200", approver)
        assert status == 200
        keys = [(d["item_id"], d["version"], d["channel"]) for d in page["deliveries"]]
        assert len(keys) == len(set(keys))  # one delivery per version and channel: none twice
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    # The second serve adopted the Redis the killed one left (its owner was dead) and so
    # stopped it on the way out.
    assert second is not None and second.returncode == 0
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
    assert orphan > 0 and not process_runs(orphan)  # gone (or a zombie nobody reaps)
