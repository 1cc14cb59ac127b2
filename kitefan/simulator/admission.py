"""The simulator's handshake rules, sans-I/O: which request is let in, and why one is refused.

:func:`admit` reads a handshake's request path (``/?api_key=...&access_token=...``) against the
accounts and answers :class:`Admit` or :class:`Refuse` (the HTTP status, the reason the body and
the log give, and the known key it was about), in the order a Kite ticker checks:

1. a redirect fault answers every handshake with its 3xx and ``Location``;
2. only ``/`` is served (404);
3. both ``api_key`` and ``access_token`` must be there (400, naming what is missing);
4. the api key must be an account's (403), unless any credentials are accepted, when an unknown
   key becomes an account with the token it brought;
5. the access token must be the account's, compared in constant time (403; an expired token is
   ``None`` and matches nothing);
6. the key must have a free connection slot (429).

The server (:mod:`kitefan.simulator.server`) counts, logs and sends what this decides.

Owns: ``admit``, ``Admit``, ``Refuse``. Must not import asyncio, websockets, the server, rich or
typer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

__all__ = ["Admit", "Refuse", "admit"]


@dataclass(frozen=True, slots=True)
class Admit:
    """Let the handshake in, on ``api_key`` (``new``: an account made for it)."""

    api_key: str
    access_token: str
    new: bool = False


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the handshake with ``status``; ``api_key`` is the known account it was about."""

    status: HTTPStatus
    why: str
    api_key: str | None = None
    location: str | None = None


def admit(
    path: str,
    *,
    tokens: Mapping[str, str | None],
    open_slots: Callable[[str], int],
    max_connections: int,
    any_credentials: bool = False,
    redirect: tuple[HTTPStatus, str | None] | None = None,
) -> Admit | Refuse:
    """Whether the handshake of ``path`` is let in.

    Args:
        path: the request's path and query.
        tokens: every account's access token by api key (``None``: expired).
        open_slots: how many connection slots an api key holds now (open or in their handshake).
        max_connections: the slots of a key.
        any_credentials: let any api key and token in (an unknown key becomes an account).
        redirect: the status and ``Location`` of a redirect fault, if one is on.
    """
    if redirect is not None:
        status, location = redirect
        return Refuse(status, "redirect fault", None, location)
    target = urlsplit(path)
    if target.path not in ("", "/"):
        return Refuse(HTTPStatus.NOT_FOUND, "the ticker is served at /")
    params = parse_qs(target.query, keep_blank_values=True)
    api_key = params.get("api_key", [""])[0]
    token = params.get("access_token", [""])[0]
    if not api_key or not token:
        missing = [name for name in ("api_key", "access_token") if not params.get(name, [""])[0]]
        return Refuse(HTTPStatus.BAD_REQUEST, f"missing {' and '.join(missing)}")
    new = api_key not in tokens
    if new and not any_credentials:
        return Refuse(HTTPStatus.FORBIDDEN, "unknown api key")
    if not any_credentials:
        expected = tokens[api_key]
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return Refuse(HTTPStatus.FORBIDDEN, "invalid or expired access token", api_key)
    held = 0 if new else open_slots(api_key)
    if held >= max_connections:
        return Refuse(HTTPStatus.TOO_MANY_REQUESTS, f"{held} connections already open", api_key)
    return Admit(api_key, token, new)
