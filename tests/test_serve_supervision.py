"""`gongkai serve` (or `serve --no-worker` beside `gongkai worker`) on the embedded defaults
keeps going when its Redis is killed (issue 12): the API answers throughout, the embedded Redis
is started again from its append-only file, the worker reconnects, and an item approved
afterwards is published. Real processes, a real `kill -9`; every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CENTER, bid_candidates, free_port

SCRIPT = Path(sys.executable).with_name("gongkai")


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GONGKAI_", "DATABASE_URL", "REDIS_URL"))}  # fmt: skip
    env.update(GONGKAI_PORT=str(port), GONGKAI_DATA_DIR=str(tmp_path / "var"),
               GONGKAI_SWEEP_INTERVAL="1")  # fmt: skip
    return env


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _call(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data or body == {} else "GET")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def _published(base: str, token: str, item_id: int) -> bool:
    status, item = _call(f"{base}/api/v1/items/{item_id}", token)
    if status != 200:
        return False
    states = [d["status"] for v in item["versions"] for d in v["deliveries"]]
    return bool(states) and all(s == "published" for s in states)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("split", [False, True], ids=["serve", "serve-no-worker-and-worker"])
def test_serve_survives_its_embedded_redis_being_killed(tmp_path: Path, split: bool) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    _cli(tmp_path, env, "migrate")
    _cli(tmp_path, env, "agency", "add", "--code", CENTER, "--name", "示范市公共资源交易中心",
         "--region", "990100")  # fmt: skip
    editor = _cli(tmp_path, env, "token", "create", "--agency", CENTER, "--role", "editor",
                  "--holder", "编辑")  # fmt: skip
    approver = _cli(tmp_path, env, "token", "create", "--agency", CENTER, "--role", "approver",
                    "--holder", "审核")  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(  # noqa: S603 - our own console script
        [str(SCRIPT), "serve", *(["--no-worker"] if split else [])],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes = [serve]
    try:
        _until(lambda: _call(f"{base}/healthz")[0] == 200, 30, "serve answers")
        if split:  # a worker of its own, on the Redis `serve` started
            processes.append(subprocess.Popen(  # noqa: S603 - our own console script
                [str(SCRIPT), "worker"], cwd=tmp_path, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            ))  # fmt: skip

        def release(title: str) -> int:
            item = bid_candidates(title=title, channels=["website"])
            status, created = _call(f"{base}/api/v1/items", editor, item)
            assert status == 201, created
            status, approved = _call(f"{base}/api/v1/items/{created['id']}/approve", approver, {})
            assert status == 200, approved
            return int(created["id"])

        first = release("杀死Redis之前的公示")
        _until(lambda: _published(base, approver, first), 60, "the first item published")

        pidfile = tmp_path / "var" / "redis" / "redis.pid"
        killed = int(pidfile.read_text())
        os.kill(killed, signal.SIGKILL)
        _until(lambda: pidfile.is_file() and int(pidfile.read_text() or 0) not in (0, killed),
               30, "a new embedded Redis")  # fmt: skip
        assert all(p.poll() is None for p in processes), "a process exited"
        assert _call(f"{base}/healthz")[0] == 200
        _until(lambda: _call(f"{base}/readyz")[0] == 200, 30, "ready again")

        second = release("Redis重启之后的公示")
        _until(lambda: _published(base, approver, second), 90, "the second item published")
        assert _cli(tmp_path, env, "ledger", "verify").startswith("ledger intact")
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
