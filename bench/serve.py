"""Serving benchmark: requests per second for the public site from the app and from nginx in
front of it (`gongkai site nginx-conf --standalone`), in one run.

    python bench/serve.py [--items 1000] [--seconds 10] [--connections 32] [--threads 2]

Builds a site of N items (the website and feeds channels' full rebuild, as `bench/site.py`),
starts `gongkai serve --no-worker` on it (a SQLite database of its own, migrated first) and
Debian's nginx with the generated configuration, and loads each with `wrk` (C, event-driven:
not the bottleneck) for the home page, an item page, the site-wide Atom feed, and a conditional
GET of the item page answered 304 (each server's own ETag), `--seconds` each. Prints the
requests per second and the median and p99 latency of each, and the targets: the app at least
3,000 item pages/s, nginx at least 20,000. Both servers and wrk share this machine's cores, as
they would on a single-host deployment. Needs wrk, nginx and its njs module (Debian: wrk, nginx,
libnginx-mod-http-js); exits with a message naming what is missing. Figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.site import CATALOGUE, publication
from channels.base import ChannelContext
from channels.feeds import feeds_factory
from channels.website import website_factory
from dispatcher.ops import nginx

TARGETS = {("app", "item"): 3_000.0, ("nginx", "item"): 20_000.0}
GONGKAI = str(Path(sys.executable).with_name("gongkai"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_site(data_dir: Path, items: int, base_url: str) -> None:
    settings = {"base_url": base_url, "outline": CATALOGUE.outline()}
    for factory, name in ((website_factory, "website"), (feeds_factory, "feeds")):
        channel = factory(ChannelContext(name, settings, None, str(data_dir)))
        channel.rebuild(publication(n) for n in range(1, items + 1))


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - localhost
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds} s")
        time.sleep(0.2)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def etag(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - localhost
        return str(answer.headers["ETag"])


def wrk(url: str, args: argparse.Namespace, header: str | None = None) -> tuple[float, str, str]:
    """Requests/s, median and p99 latency of `url` under wrk."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
               "--latency", url]  # fmt: skip
    if header:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60,  # noqa: S603
                         check=True).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    latency = out[out.index("Latency Distribution") :]
    median = re.search(r"50%\s+(\S+)", latency)[1]  # type: ignore[index]
    p99 = re.search(r"99%\s+(\S+)", latency)[1]  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx[1]} error answers under load")
    return rate, median, p99


def main(args: argparse.Namespace) -> None:
    missing = [name for name in ("wrk",) if shutil.which(name) is None]
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        missing.append("nginx")
    if not os.path.exists(nginx.NJS_MODULE):
        missing.append("libnginx-mod-http-js")
    if missing:
        sys.exit(f"bench/serve.py needs {', '.join(missing)} (Debian packages)")
    with tempfile.TemporaryDirectory(prefix="gk-bench-serve-") as tmp:
        root = Path(tmp)
        app_port, nginx_port = free_port(), free_port()
        app, edge = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{nginx_port}"
        started = time.perf_counter()
        build_site(root / "data", args.items, app)
        print(f"site of {args.items:,} items built in {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
        env = {**os.environ, "GONGKAI_DATA_DIR": str(root / "data"), "GONGKAI_PORT": str(app_port),
               "DATABASE_URL": f"sqlite+aiosqlite:///{root}/bench.db"}  # fmt: skip
        subprocess.run([GONGKAI, "migrate"], env=env, check=True, capture_output=True, timeout=120)  # noqa: S603
        site = nginx.NginxSite(site_dir=root / "data" / "site", app=f"127.0.0.1:{app_port}",
                               listen=f"127.0.0.1:{nginx_port}",
                               user="root" if os.geteuid() == 0 else None)  # fmt: skip
        conf, _ = nginx.write(site, root / "nginx", whole=True)
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        with (
            process([GONGKAI, "serve", "--no-worker"], env),
            process([nginx_bin, "-p", str(root / "nginx"), "-c", str(conf), "-g", "daemon off;"]),
        ):
            wait_for(app + "/healthz")
            wait_for(edge + "/healthz")
            item = f"/items/{args.items // 2}.html"
            pages = {"home": "/", "item": item, "feed": "/feeds/all.atom"}
            print(f"wrk: {args.threads} threads, {args.connections} connections, "
                  f"{args.seconds} s per measurement", flush=True)  # fmt: skip
            rates: dict[tuple[str, str], float] = {}
            for name, base in (("app", app), ("nginx", edge)):
                for kind, path in pages.items():
                    rate, median, p99 = wrk(base + path, args)
                    rates[(name, kind)] = rate
                    print(f"{name:6} {kind:12} {rate:10,.0f} req/s  median {median:>8}  p99 "
                          f"{p99:>8}", flush=True)  # fmt: skip
                tag = etag(base + item)
                rate, median, p99 = wrk(base + item, args, f"If-None-Match: {tag}")
                rates[(name, "304")] = rate
                print(f"{name:6} {'item 304':12} {rate:10,.0f} req/s  median {median:>8}  p99 "
                      f"{p99:>8}", flush=True)  # fmt: skip
        for (name, kind), target in TARGETS.items():
            found = rates[(name, kind)]
            verdict = "target met" if found >= target else "TARGET MISSED"
            print(f"{name} {kind} pages >= {target:,.0f}/s: {verdict} ({found:,.0f}/s)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
