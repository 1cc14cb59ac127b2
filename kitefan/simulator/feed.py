"""One simulated connection's subscriptions, sans-I/O: requests in, what to answer out.

The server feeds every message a client sends to :meth:`Feed.receive` and acts on the
:class:`Reply`: text frames to send, tokens whose current packet goes out at once, tokens newly
watched or no longer watched. It follows docs/protocol.md §2 and §8:

* ``subscribe`` adds tokens in ``quote`` mode (tokens already subscribed keep their mode) and asks
  for the current packet of each token in the request at once;
* ``unsubscribe`` removes tokens (unknown ones are ignored, as are empty lists);
* ``mode`` sets the mode of subscribed tokens and asks for a fresh packet in the new mode; on a
  token not subscribed it subscribes it first when ``implicit_subscribe_on_mode`` (two official
  clients rely on that, §2), and ignores it otherwise;
* at most ``max_tokens`` per connection, duplicates counted again (forum 7069): a request that
  would go past the limit is refused whole with ``Can't subscribe to more than 3000
  instruments.`` (the limit's number in the text), and the connection stays as it was. The real
  server's handling of a request that crosses the limit is undocumented (§8 says only that the
  new tokens fail); refusing the whole request is the simple reading of that;
* anything unreadable is answered with an error text (``Error parsing instrument tokens`` for
  tokens that are not integers, ``Invalid message: ...`` otherwise, from
  :func:`kitefan.codec.parse_request`) and changes nothing.

Owns: :class:`Feed`, :class:`Reply`, :class:`RequestCounts`. Must not import asyncio, websockets,
rich or typer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kitefan.codec import Action, RequestError, error_message, parse_request
from kitefan.models import Mode

__all__ = ["Feed", "Reply", "RequestCounts", "too_many_text"]


def too_many_text(max_tokens: int) -> str:
    """The error text for going past the per-connection limit (the real one says 3000)."""
    return f"Can't subscribe to more than {max_tokens} instruments."


@dataclass(slots=True)
class RequestCounts:
    """How many requests, and tokens in them, a connection (or the whole server) received.

    Attributes:
        subscribe_messages: well-formed ``subscribe`` requests (refused ones included).
        subscribe_tokens: tokens in them, duplicates included.
        unsubscribe_messages: well-formed ``unsubscribe`` requests.
        unsubscribe_tokens: tokens in them.
        mode_messages: well-formed ``mode`` requests.
        mode_tokens: tokens in them.
        invalid_messages: requests answered with an error text because they could not be read.
        limit_errors: requests refused because they would pass the per-connection token limit.
    """

    subscribe_messages: int = 0
    subscribe_tokens: int = 0
    unsubscribe_messages: int = 0
    unsubscribe_tokens: int = 0
    mode_messages: int = 0
    mode_tokens: int = 0
    invalid_messages: int = 0
    limit_errors: int = 0

    def copy(self) -> RequestCounts:
        """A snapshot, to compare with later values."""
        return replace(self)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server does after one request.

    Attributes:
        texts: text frames to send, in order (error messages).
        snapshot: tokens whose current packet to send at once, each in its (new) mode.
        added: tokens this connection now subscribes that it did not before.
        removed: tokens this connection no longer subscribes.
    """

    texts: tuple[str, ...] = ()
    snapshot: tuple[int, ...] = ()
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()


_NOTHING = Reply()


class Feed:
    """The subscriptions of one connection.

    Args:
        max_tokens: the per-connection limit, duplicates counted (Kite: 3000).
        implicit_subscribe_on_mode: whether ``mode`` on a token not subscribed subscribes it.
        totals: further counters to count every request in (the server's totals).
    """

    def __init__(
        self,
        *,
        max_tokens: int = 3000,
        implicit_subscribe_on_mode: bool = True,
        totals: Sequence[RequestCounts] = (),
    ) -> None:
        self.max_tokens = max_tokens
        self.implicit_subscribe_on_mode = implicit_subscribe_on_mode
        #: token -> mode of every subscribed token, in subscription order (read-only for callers)
        self.subscriptions: dict[int, Mode] = {}
        #: this connection's own request counts
        self.requests = RequestCounts()
        self._counters = (self.requests, *totals)
        self._refs: dict[int, int] = {}
        self._used = 0

    @property
    def tokens_used(self) -> int:
        """Tokens counted against the limit: each subscribe of a token counts, duplicates too."""
        return self._used

    def receive(self, message: str | bytes) -> Reply:
        """Act on one client message.

        Args:
            message: a text (or binary) WebSocket message from the client.

        Returns:
            What to send and which tokens started or stopped being watched.
        """
        try:
            request = parse_request(message)
        except RequestError as exc:
            for counts in self._counters:
                counts.invalid_messages += 1
            return Reply(texts=(error_message(exc.reason),))
        tokens = request.tokens
        if request.action is Action.SUBSCRIBE:
            for counts in self._counters:
                counts.subscribe_messages += 1
                counts.subscribe_tokens += len(tokens)
            return self._subscribe(tokens)
        if request.action is Action.UNSUBSCRIBE:
            for counts in self._counters:
                counts.unsubscribe_messages += 1
                counts.unsubscribe_tokens += len(tokens)
            return self._unsubscribe(tokens)
        for counts in self._counters:
            counts.mode_messages += 1
            counts.mode_tokens += len(tokens)
        if request.mode is None:  # never: parse_request gives every mode request its mode
            return _NOTHING
        return self._set_mode(request.mode, tokens)

    def drop_all(self) -> tuple[int, ...]:
        """Forget every subscription (the connection closed); returns the tokens it watched."""
        watched = tuple(self.subscriptions)
        self.subscriptions.clear()
        self._refs.clear()
        self._used = 0
        return watched

    # Private ------------------------------------------------------------------------------

    def _refuse(self) -> Reply:
        for counts in self._counters:
            counts.limit_errors += 1
        return Reply(texts=(error_message(too_many_text(self.max_tokens)),))

    def _subscribe(self, tokens: tuple[int, ...]) -> Reply:
        if not tokens:
            return _NOTHING
        if self._used + len(tokens) > self.max_tokens:
            return self._refuse()
        subscriptions = self.subscriptions
        refs = self._refs
        added: list[int] = []
        for token in tokens:
            refs[token] = refs.get(token, 0) + 1
            if token not in subscriptions:
                subscriptions[token] = Mode.QUOTE
                added.append(token)
        self._used += len(tokens)
        return Reply(snapshot=tuple(dict.fromkeys(tokens)), added=tuple(added))

    def _unsubscribe(self, tokens: tuple[int, ...]) -> Reply:
        removed: list[int] = []
        for token in dict.fromkeys(tokens):
            if token in self.subscriptions:
                del self.subscriptions[token]
                self._used -= self._refs.pop(token)
                removed.append(token)
        return Reply(removed=tuple(removed)) if removed else _NOTHING

    def _set_mode(self, mode: Mode, tokens: tuple[int, ...]) -> Reply:
        unique = tuple(dict.fromkeys(tokens))
        subscriptions = self.subscriptions
        added: tuple[int, ...] = ()
        if self.implicit_subscribe_on_mode:
            added = tuple(token for token in unique if token not in subscriptions)
            if added and self._used + len(added) > self.max_tokens:
                return self._refuse()
            for token in added:
                self._refs[token] = 1
            self._used += len(added)
        snapshot = tuple(token for token in unique if token in subscriptions or token in added)
        for token in snapshot:
            subscriptions[token] = mode
        return Reply(snapshot=snapshot, added=added) if snapshot else _NOTHING
