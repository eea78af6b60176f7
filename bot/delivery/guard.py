"""Where an outgoing webhook may go: never to link-local or cloud metadata addresses,
to loopback and private ones only where the operator allows it.

A target is checked when a subscription is made (a 422 naming why) and again at every
delivery, by the resolver the relay's HTTP client connects through: the address checked
is the address connected to, so a name that turns into an internal address after the
check (DNS rebinding) is refused as well.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from bot.errors import Unprocessable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# the cloud's instance metadata lives here (AWS, GCP, Azure; AWS's IPv6 one too)
NEVER = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class Refused(Unprocessable):
    """A webhook target this hub will not call (422 through the API)."""


def refusal(address: Address, allow_private: bool) -> str | None:
    """Why `address` may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in NEVER):
        return f"{address} is link-local or a cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return f"{address} is not a unicast address"
    if address.is_loopback or address.is_private:  # before reserved: ::1 is in ::/8
        if allow_private:
            return None
        return (
            f"{address} is a loopback or private address; set "
            "CHANCENTER_WEBHOOKS_ALLOW_PRIVATE=true to allow receivers on your own network"
        )
    if address.is_reserved:
        return f"{address} is not a unicast address"
    return None


def check_literal(url: str, allow_private: bool) -> str:
    """The URL's host, if the URL is one we may call: http(s), a host, no password, and
    not a refused address written as such (the resolver never sees those)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise Refused("a webhook URL carries no user or password; the signature authenticates")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return parts.hostname
    reason = refusal(address, allow_private)
    if reason is not None:
        raise Refused(reason)
    return parts.hostname


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, then refuses the whole name if any address is refused
    (an attacker's name may list a public address beside an internal one)."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            reason = refusal(ipaddress.ip_address(result["host"]), self._allow_private)
            if reason is not None:
                raise Refused(f"{host} resolves to {reason}")
        return found

    async def close(self) -> None:
        await self._inner.close()


async def check_target(url: str, allow_private: bool) -> None:
    """Raise `Refused` naming why `url` may not be called; resolves its name."""
    host = check_literal(url, allow_private)
    if _is_literal(host):
        return
    guarded = GuardedResolver(allow_private)
    try:
        await guarded.resolve(host, 0, socket.AF_UNSPEC)
    except OSError as exc:
        raise Refused(f"{host} does not resolve: {exc}") from None
    finally:
        await guarded.close()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
