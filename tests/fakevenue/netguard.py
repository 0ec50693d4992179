"""Fail any socket connection to a non-loopback address, so no test can reach the internet.

``install()`` patches ``socket.socket.connect`` / ``connect_ex`` and
``socket.create_connection`` (and, for asyncio, ``getaddrinfo`` of non-loopback names; a name
under ``.invalid`` fails as an unresolvable name, as every resolver must answer it);
``uninstall()`` restores them. Used by the backfill tests' autouse fixture and by the
subprocesses they start.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_saved: dict[str, Any] = {}


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _loopback(host: Any) -> bool:
    if isinstance(host, (bytes, bytearray)):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address and not _loopback(address[0]):
        raise NetworkBlocked(f"test tried to connect to {address!r}: tests must not reach the network")


def install() -> None:
    """Block non-loopback connections in this process (idempotent)."""
    if _saved:
        return
    _saved["connect"] = socket.socket.connect
    _saved["connect_ex"] = socket.socket.connect_ex
    _saved["getaddrinfo"] = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return _saved["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return _saved["connect_ex"](self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, (bytes, bytearray)) else host
        if isinstance(name, str) and name.rstrip(".").lower().endswith(".invalid"):
            # RFC 6761: .invalid never resolves; answer as a resolver would, without asking one
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host is not None and not _loopback(host):
            try:
                ipaddress.ip_address(host if isinstance(host, str) else host.decode())
            except ValueError:
                raise NetworkBlocked(f"test tried to resolve {host!r}: tests must not reach the network") from None
        return _saved["getaddrinfo"](host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def uninstall() -> None:
    """Restore the socket functions."""
    if not _saved:
        return
    socket.socket.connect = _saved.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _saved.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _saved.pop("getaddrinfo")
