"""Fetching the instruments dump: the one HTTP request kitefan makes (``instruments fetch``).

``GET {api_root}/instruments`` with stdlib urllib; the body is checked (every byte announced, a
well-formed dump, parsed by :func:`kitefan.instruments.parse_instruments`) before it atomically
replaces the file. Network I/O: it sits with the runtime, above the files layer.

Owns: :func:`fetch_instruments`. Must not import rich, typer, asyncio or websockets; never puts a
credential in a message.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from kitefan.errors import InstrumentsError
from kitefan.instruments import parse_instruments
from kitefan.settings import Credential

__all__ = ["fetch_instruments"]


def fetch_instruments(
    api_root: str,
    credential: Credential,
    destination: Path,
    *,
    timeout_s: float = 30.0,
) -> int:
    """Download the dump and atomically replace ``destination`` with it.

    Sends ``GET {api_root}/instruments`` with ``X-Kite-Version: 3`` and
    ``Authorization: token api_key:access_token``. The body goes to a temporary file next to
    ``destination``, is checked (every byte the server announced, and a well-formed dump), and only
    then replaces ``destination``; on any failure the old file is left untouched.

    Args:
        api_root: the Kite API root, e.g. ``https://api.kite.trade``.
        credential: the key whose token authorises the request.
        destination: where the dump goes.
        timeout_s: how long to wait on the network at any one point.

    Returns:
        How many instruments the new dump holds.

    Raises:
        InstrumentsError: HTTP error (403: the token is invalid or expired), network failure, a
            cut connection, or a response that is not an instruments dump. The message never
            carries the api key or the access token.
    """
    url = api_root.rstrip("/") + "/instruments"
    kept = f"{destination} left unchanged" if destination.exists() else "nothing written"
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the config loader)
        url,
        headers={
            "X-Kite-Version": "3",
            "Authorization": f"token {credential.api_key}:{credential.access_token}",
            "User-Agent": "kitefan",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            announced = response.headers.get("Content-Length")
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise InstrumentsError(_secret_free(_http_failure(url, exc, kept), credential)) from None
    except http.client.IncompleteRead as exc:
        expected = "" if exc.expected is None else f" of {len(exc.partial) + exc.expected}"
        raise InstrumentsError(
            f"download of {url} was cut short after {len(exc.partial)}{expected} bytes; {kept}"
        ) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        reason = reason or type(exc).__name__
        raise InstrumentsError(
            _secret_free(f"cannot download {url}: {reason}; {kept}", credential)
        ) from None
    if announced is not None and announced.isdigit() and len(body) != int(announced):
        raise InstrumentsError(
            f"download of {url} was cut short after {len(body)} of {announced} bytes; {kept}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InstrumentsError(f"{url} did not answer with an instruments dump; {kept}") from None
    try:
        index = parse_instruments(text, source=url)
    except InstrumentsError as exc:
        raise InstrumentsError(f"{exc}; {kept}") from None
    _replace(destination, body, kept)
    return len(index)


def _http_failure(url: str, exc: urllib.error.HTTPError, kept: str) -> str:
    detail = ""
    try:
        payload = json.loads(exc.read(4096) or b"null")
    except (OSError, ValueError):
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        detail = f" ({payload['message'].strip().rstrip('.')})"
    if exc.code == 403:
        return (
            f"{url} refused the request with HTTP 403{detail}: the access token is invalid or "
            f"expired; put a fresh token in the config; {kept}"
        )
    return f"{url} answered HTTP {exc.code}{detail}; {kept}"


def _secret_free(message: str, credential: Credential) -> str:
    for secret in (credential.access_token, credential.api_key):
        if secret:
            message = message.replace(secret, "…")
    return message


def _replace(destination: Path, body: bytes, kept: str) -> None:
    try:
        fd, temp_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
        )
    except OSError as exc:
        raise InstrumentsError(
            f"cannot write next to {destination}: {exc.strerror}; {kept}"
        ) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        try:
            mode = destination.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(temp, mode)
        os.replace(temp, destination)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InstrumentsError(f"cannot write {destination}: {exc.strerror}; {kept}") from None
