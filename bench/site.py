"""Site benchmark: the cost of publishing one more item into archives of growing size.

    python bench/site.py [--sizes 1000,10000,100000] [--publish 50] [--dir DIR]

For each size N: a fresh data directory; the archive of N items is written by a full rebuild
(`WebsiteChannel.rebuild`, timed: the comparison figure). Then `--publish` rounds: in each, one
more item goes into every archive through `WebsiteChannel.publish`, exactly as the worker calls
it (pages fsynced, state under the site lock), each timed; taking the sizes in turn spreads any
other load on the machine evenly over them. Items are spread over the six domains, 5 agencies,
12 regions and projects of 4 items, so every list grows with N. Prints the per-item median and
p90 at each size, the ratio of the medians at the largest and smallest size (target: at most
1.5), and the rebuild times. Figures only; nothing passes or fails. Disk: about 15 KB per item.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.base import ChannelContext, Publication
from channels.website import WebsiteChannel, website_factory
from dispatcher.rules.catalogue import load_catalogue

CATALOGUE = load_catalogue()

AGENCIES = [(f"1199010{n}MB000000{n}A", f"示范市第{n}局") for n in range(1, 6)]
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def publication(n: int) -> Publication:
    domains = list(CATALOGUE.domains.values())
    domain = domains[n % len(domains)]
    category = list(domain.categories.values())[n % 3]
    agency, agency_name = AGENCIES[n % len(AGENCIES)]
    return Publication(
        key=f"{n}:1:website", item_id=n, version=1, action="publish",
        index_no=f"{agency}/2026-{n:06d}", agency_code=agency, agency_name=agency_name,
        domain=domain.key, category=category.key, title=f"示范市第{n}号{category.name}公告",
        summary="评标委员会推荐的中标候选人及排序。" * 3,
        body_html="<p>现将有关信息公示如下。</p>" * 20,
        fields={"candidates": [{"rank": r, "name": f"候选单位{r}", "bid_price": "1000000.00"}
                               for r in (1, 2, 3)]},
        withheld=(), formed_on=date(2026, 1, 1), changed_on=None, decision=None,
        project_code=f"E99010020260{n // 4:07d}", region=f"9901{n % 12:02d}",
        document_number=None, keywords=("公共资源",), validity="valid", change_note=None,
        approved_at=T0 + timedelta(seconds=n),
        **CATALOGUE.labels(domain.key, category.key),
    )  # fmt: skip


def channel(data_dir: Path) -> WebsiteChannel:
    settings = {"base_url": "http://127.0.0.1:8080", "domains": CATALOGUE.outline()}
    return website_factory(ChannelContext("website", settings, None, str(data_dir)))


async def build(size: int, root: Path) -> tuple[WebsiteChannel, float]:
    """An archive of `size` items, written by a full rebuild; returns it and the rebuild time."""
    site = channel(root / f"n{size}")
    started = time.perf_counter()
    await asyncio.to_thread(site.rebuild, (publication(n) for n in range(1, size + 1)))
    return site, time.perf_counter() - started


async def publish_one(site: WebsiteChannel, n: int) -> float:
    started = time.perf_counter()
    await site.publish(publication(n))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--publish", type=int, default=50)
    parser.add_argument("--dir", help="where to build the archives (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    medians = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="gongkai-site-") as tmp:
        built = {}
        for size in sizes:
            built[size] = await build(size, Path(tmp))
            print(f"archive {size:>7,}: full rebuild {built[size][1]:7.1f} s", flush=True)
        # Round-robin over the archives: whatever else the machine does hits every size alike.
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for k in range(1, args.publish + 1):
            for size in sizes:
                times[size].append(await publish_one(built[size][0], size + k))
        for size in sizes:
            medians[size] = statistics.median(times[size])
            p90 = statistics.quantiles(times[size], n=10)[-1]
            rebuilt = built[size][1]
            print(
                f"archive {size:>7,}: publish one item median {medians[size] * 1000:6.1f} ms, "
                f"p90 {p90 * 1000:6.1f} ms; full rebuild {rebuilt:7.1f} s "
                f"({rebuilt / size * 1000:.2f} ms/item)",
                flush=True,
            )
    small, large = min(sizes), max(sizes)
    ratio = medians[large] / medians[small]
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print(f"ratio {large:,}/{small:,}: {ratio:.2f} (target <= 1.5: {verdict})")


if __name__ == "__main__":
    asyncio.run(main())
