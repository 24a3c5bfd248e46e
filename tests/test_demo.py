"""`gongkai demo` as a person runs it: a real process, a real port, items from all domains."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GONGKAI_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(GONGKAI_PORT=str(port), GONGKAI_DATA_DIR=str(tmp_path / "var"))
    return env


def _get(url: str, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        data: dict[str, object] = json.load(response)
        return data


@pytest.mark.timeout(90)
def test_demo_serves_sample_items_from_all_six_domains(tmp_path: Path) -> None:
    port = _free_port()
    script = Path(sys.executable).with_name("gongkai")
    output: list[str] = []
    with subprocess.Popen(  # noqa: S603 - our own console script
        [str(script), "demo"], cwd=tmp_path, env=_env(tmp_path, port),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        _check_running_demo(process, port, output)
    assert process.returncode == 0, "".join(output)
    _check_database(tmp_path, script, port)


def _check_running_demo(process: subprocess.Popen[str], port: int, output: list[str]) -> None:
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "serving the API" in line:
                break
        text = "".join(output)
        assert f"serving the API and a worker on http://127.0.0.1:{port}/api/v1/" in text, text
        auditor = re.search(r"auditor\s+(gk_\S+)", text)
        assert auditor, text
        base = f"http://127.0.0.1:{port}/api/v1"
        catalogue = _get(f"{base}/catalogue")
        assert len(catalogue["domains"]) == 6  # type: ignore[arg-type]
        listing = _get(f"{base}/items", auditor[1])
        assert listing["items"], listing
        # The worker delivers the approved items to the website and the feeds by itself.
        first = listing["items"][-1]["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            item = _get(f"{base}/items/{first}", auditor[1])
            states = {d["status"] for d in item["versions"][0]["deliveries"]}  # type: ignore[index]
            if states == {"published"}:
                break
            time.sleep(0.2)
        assert states == {"published"}, item
        # Items whose categories go to WeChat are published on the sandbox account too.
        page = re.search(r"WeChat sandbox: (http://127\.0\.0\.1:\d+/sandbox/)", text)
        assert page, text
        deadline, overview = time.monotonic() + 30, ""
        while time.monotonic() < deadline and 'href="/s/' not in overview:
            with urllib.request.urlopen(page[1], timeout=10) as response:  # noqa: S310
                overview = response.read().decode()
            time.sleep(0.2)
        assert "微信公众号沙箱" in overview and 'href="/s/' in overview
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        assert process.stdout is not None
        output.append(process.stdout.read())


def _check_database(tmp_path: Path, script: Path, port: int) -> None:
    assert (tmp_path / "var" / "site" / "feeds" / "all.atom").is_file()
    assert list((tmp_path / "var" / "site" / "items").glob("*.html"))
    with closing(sqlite3.connect(tmp_path / "var" / "gongkai.db")) as db:
        domains = {row[0] for row in db.execute("SELECT DISTINCT domain FROM items")}
        states = dict(db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
        withheld = db.execute("SELECT count(*) FROM item_versions WHERE withheld != '[]'")
        assert withheld.fetchone()[0] >= 1
        count = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert domains == {"housing", "land", "mining", "procurement", "state_assets", "bidding"}
    assert set(states) == {"approved", "scheduled"}
    assert states["scheduled"] == 1

    # Running it again adds nothing twice.
    again = subprocess.run(  # noqa: S603
        [str(script), "demo", "--no-serve"], cwd=tmp_path, env=_env(tmp_path, port),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with closing(sqlite3.connect(tmp_path / "var" / "gongkai.db")) as db:
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == count
