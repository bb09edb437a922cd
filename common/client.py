"""The client's address behind the reverse proxies an operator declares (TRUSTED_PROXY_COUNT).

Each proxy appends the address it received the request from to X-Forwarded-For, so with N trusted proxies in
front of the web process the Nth address from the right was written by the outermost of them: that is the
client. Anything to its left was sent by the client itself and is never believed; with fewer than N addresses
the request did not come through every proxy, and the socket's peer is used instead. With 0 (the default, for
a web process nobody reaches through a proxy) X-Forwarded-For is ignored altogether.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest | None) -> str | None:
    """The client's IP address (normalised: ``::ffff:192.0.2.1`` is ``192.0.2.1``), or None when unknown."""
    if request is None:
        return None
    candidate = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        if len(forwarded) >= proxies:
            candidate = forwarded[-proxies]
    return _normalised(candidate)


def _normalised(text: str) -> str | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443", as some proxies write it
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def client_network(address: str | None) -> str:
    """What one client controls, for counting: an IPv4 address, or an IPv6 address's /64 (the smallest block a
    provider hands out, so one machine can use 2**64 addresses of it)."""
    if address is None:
        return "unknown"
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
