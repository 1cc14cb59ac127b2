"""Every error kitefan raises on purpose, as one tree rooted at :class:`KitefanError`.

::

    KitefanError
    ├── CodecError        a binary frame or text message that does not follow the wire protocol
    ├── ConfigError       a config file with one or more problems (all of them, each with its place)
    ├── PlanError         symbols that cannot be placed: over capacity, unpinned under "manual", ...
    ├── SymbolError       a token, name or mode given to a running feed that is malformed or unknown
    ├── AuthError         the server refused a key's credentials (HTTP 403 on the upgrade)
    ├── SlotLimitError    the server refused another connection for a key (HTTP 429)
    ├── FeedError         a feed that cannot go on (server misbehaving, nothing to stream)
    │   ├── NoUsableKeyError  every key was refused: nothing can stream
    │   └── UnreachableError  no connection opened within the feed's connect deadline
    ├── ControlError      talking to a running stream failed (none running, gone, refused)
    │   └── StreamNotRunningError  no stream of this config is running (or it died uncleanly)
    ├── InstrumentsError  the instruments dump could not be read or fetched
    ├── BrokerError       Redis could not be reached or read, or an entry is not kitefan's
    └── RecordingError    a recording that cannot be written or read

Messages are lower-case, one line, without a trailing period, and built from the attributes, so
that callers can also inspect the structured data. No message ever carries an access token or an
api key; where a key must be named, its config ``id`` or a masked form is used.

Owns: the exception classes. Must not import anything from kitefan.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

__all__ = [
    "AuthError",
    "BrokerError",
    "CodecError",
    "ConfigError",
    "ControlError",
    "FeedError",
    "InstrumentsError",
    "KitefanError",
    "NoUsableKeyError",
    "PlanError",
    "RecordingError",
    "SlotLimitError",
    "StreamNotRunningError",
    "SymbolError",
    "UnreachableError",
]


class KitefanError(Exception):
    """Root of every error kitefan raises on purpose."""


class CodecError(KitefanError):
    """Bytes or text that do not follow the Kite ticker protocol.

    Attributes:
        offset: byte offset in the frame where decoding could not go on (``-1`` for text).
        reason: what was wrong there.
    """

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.offset < 0:
            return self.reason
        return f"malformed frame at byte {self.offset}: {self.reason}"


class ConfigError(KitefanError):
    """A config with problems. ``problems`` lists each as ``"<place>: <what>"``.

    Attributes:
        source: the file (or other origin) the config came from.
        problems: every problem found, each with its place, e.g. ``keys[1].api_key: missing``.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        return f"{self.source}: {len(self.problems)} problems: " + "; ".join(self.problems)


class PlanError(KitefanError):
    """Symbols that cannot be placed on the available keys and connections.

    Attributes:
        reason: what is wrong.
        asked: how many symbols were asked for (0 if not a capacity problem).
        fits: how many fit (0 if not a capacity problem).
        hint: what to do about it.
    """

    def __init__(self, reason: str, *, asked: int = 0, fits: int = 0, hint: str = "") -> None:
        self.reason = reason
        self.asked = asked
        self.fits = fits
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.reason}; {self.hint}" if self.hint else self.reason


class SymbolError(KitefanError):
    """A symbol or mode that cannot be streamed: malformed, out of range, or unknown.

    :meth:`FeedManager.subscribe <kitefan.manager.FeedManager.subscribe>`, ``unsubscribe`` and
    ``set_mode`` raise it before changing or sending anything.

    Attributes:
        given: what was given, as it was given.
        reason: what is wrong with it, naming it (e.g. ``unknown symbol "NSE:INFYY"``).
        closest: the names of the instruments dump closest to it, best first (may be empty).
    """

    def __init__(self, given: object, reason: str, *, closest: Sequence[str] = ()) -> None:
        self.given = given
        self.reason = reason
        self.closest = tuple(closest)
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.closest:
            return f"{self.reason}; closest: {', '.join(self.closest)}"
        return self.reason


class AuthError(KitefanError):
    """The server refused a key's credentials at the handshake (HTTP 403).

    Attributes:
        key_id: the config id of the key (never the api key itself).
        status: the HTTP status the server answered with.
    """

    def __init__(self, key_id: str, status: int = 403) -> None:
        self.key_id = key_id
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"key {self.key_id!r} was refused with HTTP {self.status}: its access token is "
            "invalid or expired; put a fresh token in the config or its environment variable"
        )


class SlotLimitError(KitefanError):
    """The server refused one more connection for a key (HTTP 429).

    Attributes:
        key_id: the config id of the key.
    """

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"key {self.key_id!r} was refused another connection with HTTP 429: another program "
            "holds this key's connections; stop it or lower max_connections_per_key"
        )


class FeedError(KitefanError):
    """A feed that cannot go on (for example, no key could authenticate)."""


class ControlError(KitefanError):
    """Talking to a running stream failed: none is running, it is gone, or it refused."""


class StreamNotRunningError(ControlError):
    """No stream of a config is running on this machine for this user.

    Attributes:
        config: the config file (resolved path) whose stream was looked for.
        gone: True when one was registered but died without cleaning up (its socket was left).
        start: the command that starts one, for the message.
    """

    def __init__(self, config: str, *, gone: bool = False, start: str = "") -> None:
        self.config = config
        self.gone = gone
        # quoted for the shell: the command is meant to be pasted as it is
        self.start = start or f"kitefan stream --config {shlex.quote(config)}"
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.gone:
            return (
                f"the stream of {self.config} is gone (it ended without cleaning up): "
                f"start one with `{self.start}`"
            )
        return f"no running stream for {self.config}: start one with `{self.start}`"


class InstrumentsError(KitefanError):
    """The instruments dump could not be read, parsed or fetched."""


class NoUsableKeyError(FeedError):
    """Every key was refused by the server: nothing can stream (exit code 4)."""


class UnreachableError(FeedError):
    """No connection of any key opened within ``deadline_s`` of the feed starting.

    Attributes:
        deadline_s: the feed's ``connect_deadline_s``.
        url: the ticker URL tried (it never carries credentials).
        last: why the last attempt failed, as its status said (``""`` if none was reported).
    """

    def __init__(self, deadline_s: float, url: str, last: str = "") -> None:
        super().__init__(deadline_s, url, last)
        self.deadline_s = deadline_s
        self.url = url
        self.last = last

    def __str__(self) -> str:
        last = f" (last: {self.last})" if self.last else ""
        return (
            f"no connection to {self.url} opened in {self.deadline_s:g} s{last}; "
            "check the url, the network and that the server is up"
        )


class BrokerError(KitefanError):
    """Redis could not be reached or read, or a stream entry is not one kitefan wrote.

    Its message never holds the Redis password.
    """


class RecordingError(KitefanError):
    """A recording that cannot be written or read: a path that is not a kitefan recording, a
    newer format version, a file that cannot be opened."""
