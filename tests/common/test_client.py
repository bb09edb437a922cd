"""common.client: the client's address is what the trusted proxies say, never what the client wrote."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from common.client import client_address, client_network


def request(remote: str = "10.0.0.2", forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.66", "10.0.0.2"),  # no proxy declared: the header is the client's word, ignored
        (1, "198.51.100.66", "198.51.100.66"),
        (1, "192.0.2.1, 198.51.100.66", "198.51.100.66"),  # the client's own prefix is never believed
        (2, "192.0.2.1, 198.51.100.66, 10.0.0.9", "198.51.100.66"),
        (2, "198.51.100.66", "10.0.0.2"),  # shorter than the chain: it skipped a proxy
        (1, "", "10.0.0.2"),
        (1, " , ", "10.0.0.2"),
        (1, "[2001:db8::7]:443", "2001:db8::7"),
        (1, "198.51.100.66:51234", "198.51.100.66"),
        (1, "::ffff:198.51.100.66", "198.51.100.66"),
        (1, "not-an-address", None),
    ],
)
def test_the_client_is_the_nth_address_from_the_right(settings, proxies, forwarded, expected) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies

    assert client_address(request(forwarded=forwarded)) == expected


def test_without_a_request_or_a_usable_peer_the_address_is_unknown(settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 0

    assert client_address(None) is None
    assert client_address(request(remote="")) is None
    assert client_network(None) == "unknown"


def test_an_ipv6_client_counts_as_its_slash_64_and_an_ipv4_one_as_itself() -> None:
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("198.51.100.66") == "198.51.100.66"
