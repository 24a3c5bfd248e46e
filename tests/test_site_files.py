"""The site's files from memory: a rewritten page is served at once, nothing that is not a
regular file is, memory stays bounded, and the conditional answers are FileResponse's."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from channels.files import write_atomic
from dispatcher.http.site_files import SiteFile, SiteFiles, delegated, respond


def test_a_rewritten_page_is_served_at_once(tmp_path: Path) -> None:
    files, page = SiteFiles(), tmp_path / "index.html"
    write_atomic(page, b"<p>1</p>")
    first = files.get(page)
    assert isinstance(first, SiteFile) and first.body == b"<p>1</p>"
    assert files.get(page) is first  # unchanged: from memory
    write_atomic(page, b"<p>2</p>")  # same size, within the same second
    second = files.get(page)
    assert isinstance(second, SiteFile) and second.body == b"<p>2</p>"
    assert second.etag != first.etag


def test_only_regular_files_and_bounded(tmp_path: Path) -> None:
    files = SiteFiles(max_file=100, max_total=250)
    (tmp_path / "dir").mkdir()
    assert files.get(tmp_path / "dir") is None
    assert files.get(tmp_path / "missing.html") is None
    assert files.get(tmp_path / "missing" / "deeper.html") is None
    big = tmp_path / "big.html"
    big.write_bytes(b"x" * 101)
    assert files.get(big) is False  # served from disk instead
    for n in range(5):
        (tmp_path / f"{n}.html").write_bytes(b"y" * 100)
        assert isinstance(files.get(tmp_path / f"{n}.html"), SiteFile)
    assert files._total <= 250 and len(files._files) == 2


def test_conditional_answers_are_file_response_s(tmp_path: Path) -> None:
    page = tmp_path / "a.html"
    write_atomic(page, b"<p>a</p>")
    found = SiteFiles().get(page)
    assert isinstance(found, SiteFile)
    headers = {"Cache-Control": "no-cache"}

    def answer(**request_headers: str) -> int:
        request = make_mocked_request("GET", "/a.html", headers=request_headers)
        return respond(request, found, dict(headers)).status

    assert answer() == 200
    assert answer(**{"If-None-Match": f'"{found.etag}"'}) == 304
    assert answer(**{"If-None-Match": f'W/"{found.etag}"'}) == 304  # weak comparison
    assert answer(**{"If-None-Match": '"other"'}) == 200
    assert answer(**{"If-None-Match": "*"}) == 304
    modified = respond(make_mocked_request("GET", "/"), found, dict(headers)).headers
    assert answer(**{"If-Modified-Since": modified["Last-Modified"]}) == 304
    assert answer(**{"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}) == 200
    assert delegated(make_mocked_request("GET", "/", headers={"Range": "bytes=0-1"}))
    assert not delegated(make_mocked_request("GET", "/"))
