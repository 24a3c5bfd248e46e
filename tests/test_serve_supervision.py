"""`gongkai serve` (or `serve --no-worker` beside `gongkai worker`) on the embedded defaults
keeps going when its Redis is killed (issue 12): the API answers throughout, the embedded Redis
is started again from its append-only file, the worker reconnects, and an item approved
afterwards is published. Real processes, a real `kill -9`; every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import bid_candidates, free_port
from tests.processes import SCRIPT, call, cli, env_for, press_office, published, until


@pytest.mark.timeout(180)
@pytest.mark.parametrize("split", [False, True], ids=["serve", "serve-no-worker-and-worker"])
def test_serve_survives_its_embedded_redis_being_killed(tmp_path: Path, split: bool) -> None:
    port = free_port()
    env = env_for(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    editor, approver = press_office(tmp_path, env)
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(  # noqa: S603 - our own console script
        [str(SCRIPT), "serve", *(["--no-worker"] if split else [])],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes = [serve]
    try:
        until(lambda: call(f"{base}/healthz")[0] == 200, 30, "serve answers")
        if split:  # a worker of its own, on the Redis `serve` started
            processes.append(subprocess.Popen(  # noqa: S603 - our own console script
                [str(SCRIPT), "worker"], cwd=tmp_path, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            ))  # fmt: skip

        def release(title: str) -> int:
            item = bid_candidates(title=title, channels=["website"])
            status, created = call(f"{base}/api/v1/items", editor, item)
            assert status == 201, created
            status, approved = call(f"{base}/api/v1/items/{created['id']}/approve", approver, {})
            assert status == 200, approved
            return int(created["id"])

        first = release("杀死Redis之前的公示")
        until(lambda: published(base, approver, first), 60, "the first item published")

        pidfile = tmp_path / "var" / "redis" / "redis.pid"
        killed = int(pidfile.read_text())
        os.kill(killed, signal.SIGKILL)
        until(lambda: pidfile.is_file() and int(pidfile.read_text() or 0) not in (0, killed),
               30, "a new embedded Redis")  # fmt: skip
        assert all(p.poll() is None for p in processes), "a process exited"
        assert call(f"{base}/healthz")[0] == 200
        until(lambda: call(f"{base}/readyz")[0] == 200, 30, "ready again")

        second = release("Redis重启之后的公示")
        until(lambda: published(base, approver, second), 90, "the second item published")
        assert cli(tmp_path, env, "ledger", "verify").startswith("ledger intact")
    finally:
        for process in reversed(processes):  # the worker first, then the Redis's owner
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()
    assert [p.returncode for p in processes] == [0] * len(processes), (
        tmp_path / "serve.log"
    ).read_text()
    # Whether a worker stopped and was started again, or its Redis client reconnected in time,
    # depends on when its next poll fell: what counts is the item published afterwards.
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # stopped on the way out
