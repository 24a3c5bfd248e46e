"""Real `gongkai` processes for the tests that kill things: the console script, its
environment on the embedded defaults, the CLI, plain HTTP to it, and bounded waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import CENTER

SCRIPT = Path(sys.executable).with_name("gongkai")


def env_for(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GONGKAI_", "DATABASE_URL", "REDIS_URL"))}  # fmt: skip
    env.update(GONGKAI_PORT=str(port), GONGKAI_DATA_DIR=str(tmp_path / "var"),
               GONGKAI_SWEEP_INTERVAL="1")  # fmt: skip
    return env


def cli(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def call(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
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


def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def published(base: str, token: str, item_id: int) -> bool:
    status, item = call(f"{base}/api/v1/items/{item_id}", token)
    if status != 200:
        return False
    states = [d["status"] for v in item["versions"] for d in v["deliveries"]]
    return bool(states) and all(s == "published" for s in states)


def press_office(tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """A migrated database with the trading centre and an editor's and an approver's token."""
    cli(tmp_path, env, "migrate")
    cli(tmp_path, env, "agency", "add", "--code", CENTER, "--name", "示范市公共资源交易中心",
        "--region", "990100")  # fmt: skip
    editor = cli(tmp_path, env, "token", "create", "--agency", CENTER, "--role", "editor",
                 "--holder", "编辑")  # fmt: skip
    approver = cli(tmp_path, env, "token", "create", "--agency", CENTER, "--role", "approver",
                   "--holder", "审核")  # fmt: skip
    return editor, approver
