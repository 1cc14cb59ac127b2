"""Text from elsewhere, made safe to show on a terminal.

A server's error text, a broadcast message or an order's fields reach the dashboard and stderr;
a control character in them would be obeyed by the terminal (``\\x1b[2J`` clears the screen, an
OSC sequence sets the window title or a hyperlink). :func:`printable` drops every control
character, C0 (but ``\\t``, ``\\n`` and ``\\r``, which become a space, so the text stays one
line), DEL, C1, and the bidirectional embedding, override and isolate marks that reorder how a
line reads. What remains is printed as is.

JSON output keeps the exact text: the encoder escapes C0 itself, and :func:`json_escaped`
escapes the rest (DEL, C1, the bidirectional marks) as ``\\uXXXX``, which decodes to the same.

Pure: strings in, strings out.

Owns: ``printable``, ``json_escaped``. Must not import asyncio, websockets or typer.
"""

from __future__ import annotations

__all__ = ["json_escaped", "printable"]

# Beyond C0: DEL, C1, and the bidirectional marks, embeddings, overrides and isolates.
_BEYOND_C0 = (
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_DROPPED: dict[int, int | None] = {
    **dict.fromkeys(range(32)),
    **dict.fromkeys(_BEYOND_C0),
    ord("\t"): ord(" "),
    ord("\n"): ord(" "),
    ord("\r"): ord(" "),
}


def printable(text: str) -> str:
    """``text`` without control characters (tabs and line breaks become spaces)."""
    if text.isprintable():
        return text
    return text.translate(_DROPPED)


_ESCAPED = {c: f"\\u{c:04x}" for c in _BEYOND_C0}


def json_escaped(line: str) -> str:
    """A JSON text (from an encoder that escapes C0) with DEL, C1 and the bidirectional marks
    escaped too: the same JSON value, and nothing in it a terminal would obey."""
    if line.isascii() and "\x7f" not in line:
        return line
    return line.translate(_ESCAPED)
