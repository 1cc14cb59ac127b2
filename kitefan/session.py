"""The subscriptions of one connection, and the text messages that get the server there.

Sans-I/O in the manner of websockets' ``Protocol``: callers say what they want (:meth:`add`,
:meth:`remove`), tell the session when the socket opens and closes, and drain
:meth:`data_to_send`. The session never touches a socket.

The server keeps subscriptions only for the life of one socket, so on every open the session
sends everything again: ``subscribe`` in batches of ``batch_size`` tokens, then ``mode`` messages
per mode group (quote included, so nothing depends on the server's default). While open, changes
go out as they are asked for; while closed, they are only recorded.

The session also keeps which subscribed tokens have not ticked since they were subscribed: a
token that stays silent is usually expired or mistyped (Kite accepts any number and says nothing).

Owns: ``FeedSession``. Must not import asyncio, websockets, rich or typer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kitefan.codec import mode_message, subscribe_message, unsubscribe_message
from kitefan.models import Mode

__all__ = ["FeedSession"]

_MODE_ORDER = (Mode.LTP, Mode.QUOTE, Mode.FULL)


def _batches(tokens: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(tokens), size):
        yield tokens[start : start + size]


class FeedSession:
    """What one connection should be subscribed to, and the messages to say so.

    Args:
        batch_size: tokens per subscribe, unsubscribe or mode message.
    """

    def __init__(self, batch_size: int = 500) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self._wanted: dict[int, Mode] = {}
        self._by_mode: dict[Mode, int] | None = None  # counted when asked, until a change
        self._outbox: list[str] = []
        self._open = False
        #: Subscribed tokens that have not ticked since they were subscribed on this socket.
        self.silent: set[int] = set()

    @property
    def wanted(self) -> Mapping[int, Mode]:
        """Token to mode, for every token this connection should carry."""
        return self._wanted

    def count_by_mode(self) -> Mapping[Mode, int]:
        """How many wanted tokens are in each mode (every mode listed, in wire order).

        Counted once after each change, so that stats taken often cost nothing per symbol.
        """
        counts = self._by_mode
        if counts is None:
            counts = dict.fromkeys(_MODE_ORDER, 0)
            for mode in self._wanted.values():
                counts[mode] += 1
            self._by_mode = counts
        return counts

    @property
    def is_open(self) -> bool:
        return self._open

    def __len__(self) -> int:
        return len(self._wanted)

    # Socket life

    def opened(self) -> None:
        """The socket is open: queue everything wanted, subscribe then modes."""
        self._open = True
        self._outbox.clear()
        self._queue_subscribe(list(self._wanted.items()))
        self.silent = set(self._wanted)

    def closed(self) -> None:
        """The socket is gone: the server forgot everything; unsent messages are moot."""
        self._open = False
        self._outbox.clear()

    # Changes

    def add(self, items: Iterable[tuple[int, Mode]]) -> None:
        """Want these tokens in these modes; a token already wanted changes mode if it differs."""
        new: list[tuple[int, Mode]] = []
        changed: list[tuple[int, Mode]] = []
        for token, mode in items:
            current = self._wanted.get(token)
            self._by_mode = None
            if current is None:
                new.append((token, mode))
            elif current is not mode:
                changed.append((token, mode))
            self._wanted[token] = mode
        if not self._open:
            return
        self._queue_subscribe(new)
        self._queue_modes(changed)
        self.silent.update(token for token, _ in new)

    def remove(self, tokens: Iterable[int]) -> None:
        """No longer want these tokens (unknown ones are ignored)."""
        gone = [token for token in tokens if self._wanted.pop(token, None) is not None]
        if gone:
            self._by_mode = None
        self.silent.difference_update(gone)
        if self._open:
            for batch in _batches(gone, self.batch_size):
                self._outbox.append(unsubscribe_message(batch))

    def set_mode(self, tokens: Iterable[int], mode: Mode) -> None:
        """Change the mode of tokens already wanted (others are ignored)."""
        self.add((token, mode) for token in tokens if token in self._wanted)

    def clear(self) -> None:
        """Want nothing."""
        self.remove(list(self._wanted))

    # Output

    def data_to_send(self) -> list[str]:
        """The text messages to send now, in order; the outbox is emptied."""
        out = self._outbox
        self._outbox = []
        return out

    # Internals

    def _queue_subscribe(self, items: list[tuple[int, Mode]]) -> None:
        if not items:
            return
        for batch in _batches([token for token, _ in items], self.batch_size):
            self._outbox.append(subscribe_message(batch))
        self._queue_modes(items)

    def _queue_modes(self, items: list[tuple[int, Mode]]) -> None:
        groups: dict[Mode, list[int]] = {}
        for token, mode in items:
            groups.setdefault(mode, []).append(token)
        for mode in _MODE_ORDER:
            for batch in _batches(groups.get(mode, []), self.batch_size):
                self._outbox.append(mode_message(mode, batch))
