"""The client's address behind nginx: X-Forwarded-For believed only from a trusted proxy, and
only as far as the last address that is not a proxy (a client cannot forge its way in)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from dispatcher.http.forwarded import client_address

PROXIES = ("172.16.0.0/12", "127.0.0.1/32")


class Transport:
    """Just enough of an asyncio transport to name the peer."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),  # no proxy
        ("203.0.113.9", "10.0.0.1", "203.0.113.9"),  # not from a proxy: the header is not believed
        ("172.18.0.5", "203.0.113.9", "203.0.113.9"),  # nginx in front
        ("172.18.0.5", "10.0.0.1, 203.0.113.9", "203.0.113.9"),  # a forged first hop
        ("172.18.0.5", "203.0.113.9, 172.18.0.9", "203.0.113.9"),  # two proxies
        ("172.18.0.5", "127.0.0.1", "172.18.0.5"),  # only proxies: the nearest
        ("172.18.0.5", None, "172.18.0.5"),
        ("172.18.0.5", "not-an-address", None),
        ("2001:db8::1", None, "2001:db8::1"),
    ],
)
def test_the_client_behind_a_trusted_proxy(
    peer: str, forwarded: str | None, expected: str | None
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/metrics", headers=headers, transport=Transport(peer))
    found = client_address(request, PROXIES)
    assert found == (ipaddress.ip_address(expected) if expected else None)
