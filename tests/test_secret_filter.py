"""The filter on the loggers of the connection and of websockets: no record it passes carries an
api key, an access token or a URL's password, in its message or in its traceback."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

from websockets.exceptions import InvalidURI

from kitefan.connection import SecretFilter

URL = "ws://h:70000/#x?api_key=SENTINEL-key&access_token=SENTINEL%2Ftoken"


def formatted(logger_name: str, emit: Callable[[logging.Logger], None]) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.addFilter(SecretFilter())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_the_message_is_masked() -> None:
    text = formatted(
        "test.secret_filter.message",
        lambda log: log.debug("> GET %s via %s", URL, "http://me:SENTINEL-pw@proxy:3128"),
    )
    assert text == (
        "DEBUG > GET ws://h:70000/#x?api_key=…&access_token=… via http://me:…@proxy:3128\n"
    )


def test_the_traceback_is_masked_chained_exceptions_included() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            try:
                raise InvalidURI(URL, "fragment identifier is meaningless")
            except InvalidURI as exc:
                raise RuntimeError(f"could not open {URL}") from exc
        except RuntimeError:
            log.exception("the attempt failed")

    text = formatted("test.secret_filter.traceback", emit)
    assert text.startswith("ERROR the attempt failed\nTraceback (most recent call last):\n")
    assert (
        "websockets.exceptions.InvalidURI: ws://h:70000/#x?api_key=…&access_token=… isn't a "
        "valid URI: fragment identifier is meaningless\n" in text
    )
    assert "RuntimeError: could not open ws://h:70000/#x?api_key=…&access_token=…" in text
    assert "SENTINEL" not in text
