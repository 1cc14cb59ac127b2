"""The control protocol without a socket: exact lines both ways, good and hostile.

What the server answers to a line is ``encode_failure(failure(CONTROL, str(error)))`` for a line
:func:`decode_request` refuses, so each refusal's message here is the byte-exact answer.
"""

from __future__ import annotations

import json

import pytest

from kitefan.change import ConfigChange, MovedSymbol, PlacedSymbol, SlotCounts
from kitefan.control_protocol import (
    PROTOCOL_VERSION,
    REQUEST_LIMIT,
    Apply,
    ErrorDocument,
    ErrorKind,
    Failure,
    Hello,
    NeverTicked,
    Ok,
    Op,
    Preview,
    ProtocolError,
    Request,
    Stats,
    decode_request,
    decode_response,
    encode_failure,
    encode_request,
    encode_result,
    error_document,
    error_of,
    failure,
    read_change,
    read_hello,
    read_never_ticked,
)
from kitefan.errors import (
    ConfigError,
    ControlError,
    FeedError,
    KitefanError,
    PlanError,
    StreamNotRunningError,
)

REQUESTS: list[tuple[Request, bytes]] = [
    (Hello(), b'{"v":1,"op":"hello"}\n'),
    (Stats(), b'{"v":1,"op":"stats"}\n'),
    (NeverTicked(), b'{"v":1,"op":"never_ticked","key":null}\n'),
    (NeverTicked("bravo"), b'{"v":1,"op":"never_ticked","key":"bravo"}\n'),
    (Preview(), b'{"v":1,"op":"preview"}\n'),
    (Apply(), b'{"v":1,"op":"apply"}\n'),
]


def test_version_and_ops() -> None:
    assert PROTOCOL_VERSION == 1 and REQUEST_LIMIT == 65536
    assert [str(op) for op in Op] == ["hello", "stats", "never_ticked", "preview", "apply"]
    assert [str(k) for k in ErrorKind] == ["config", "plan", "feed", "control", "internal"]


@pytest.mark.parametrize(("request_", "line"), REQUESTS)
def test_each_request_is_one_exact_line_and_reads_back(request_: Request, line: bytes) -> None:
    assert encode_request(request_) == line
    assert decode_request(line) == request_
    assert decode_request(line.rstrip(b"\n")) == request_


@pytest.mark.parametrize(
    ("line", "request_"),
    [
        (b'{"op": "stats", "v": 1}\r\n', Stats()),  # any key order and spacing
        (b'{"v": 1.0, "op": "hello"}', Hello()),  # 1.0 is 1 in JSON
        (b'{"v":1,"op":"never_ticked"}', NeverTicked()),  # no key: every key
        (b'{"v":1,"op":"apply","key":"ignored","extra":[1,2]}', Apply()),
        ('{"v":1,"op":"never_ticked","key":"k\u00e9y"}'.encode(), NeverTicked("k\u00e9y")),
    ],
)
def test_what_a_request_may_vary(line: bytes, request_: Request) -> None:
    assert decode_request(line) == request_


HOSTILE = [
    (b"not json\n", "a request is one JSON object per line"),
    (b"\xff\xfe{}\n", "a request is one JSON object per line"),
    (b"\n", "a request is one JSON object per line"),
    (b'{"v":1,"op":"stats"} {"v":1,"op":"stats"}\n', "a request is one JSON object per line"),
    (b"[1, 2]\n", 'a request needs an "op"'),
    (b'"stats"\n', 'a request needs an "op"'),
    (b"null\n", 'a request needs an "op"'),
    (b'{"v": 1}\n', 'a request needs an "op"'),
    (b'{"v": 1, "op": 3}\n', 'a request needs an "op"'),
    (
        b'{"v": 2, "op": "stats"}\n',
        "this stream speaks control protocol 1, the request 2: use the same kitefan version "
        "for both",
    ),
    (
        b'{"op": "stats"}\n',
        "this stream speaks control protocol 1, the request none: use the same kitefan "
        "version for both",
    ),
    (
        b'{"v": "1", "op": "stats"}\n',
        'this stream speaks control protocol 1, the request "1": use the same kitefan '
        "version for both",
    ),
    (
        b'{"v": true, "op": "stats"}\n',
        "this stream speaks control protocol 1, the request true: use the same kitefan "
        "version for both",
    ),
    (
        b'{"v": "' + b"9" * 100 + b'", "op": "stats"}\n',
        'this stream speaks control protocol 1, the request "'
        + "9" * 38
        + "\u2026: use the same kitefan version for both",
    ),
    (
        b'{"v": 1, "op": "reboot"}\n',
        "unknown op 'reboot': hello, stats, never_ticked, preview or apply",
    ),
    (b'{"v": 1, "op": "never_ticked", "key": 3}\n', '"key" is a key id or null'),
    (b'{"v": 1, "op": "never_ticked", "key": ["a"]}\n', '"key" is a key id or null'),
    (b'{"v": 1, "op": "' + b"x" * REQUEST_LIMIT + b'"}\n', "request too long"),
]


@pytest.mark.parametrize(("line", "message"), HOSTILE)
def test_a_line_that_is_not_a_request_is_refused_with_one_line(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(line)
    assert str(caught.value) == message
    assert isinstance(caught.value, ControlError)
    answer = encode_failure(failure(ErrorKind.CONTROL, str(caught.value)))
    assert answer == (
        b'{"v":1,"ok":false,"error":{"kind":"control","message":'
        + json.dumps(message, ensure_ascii=False).encode()
        + b"}}\n"
    )


def test_the_limit_counts_the_newline() -> None:
    head, tail = b'{"v":1,"op":"hello","pad":"', b'"}\n'
    fits = head + b"x" * (REQUEST_LIMIT - len(head) - len(tail)) + tail
    assert len(fits) == REQUEST_LIMIT and decode_request(fits) == Hello()
    with pytest.raises(ProtocolError, match=r"^request too long$"):
        decode_request(fits[:-3] + b'x"}\n')


def test_results_are_one_exact_line_and_read_back() -> None:
    hello = {
        "pid": 4242,
        "config": "/home/me/kitefan.toml",
        "version": "0.9.0",
        "protocol": 1,
        "started_at": 1700000000.5,
        "metrics": None,
        "shared": False,
    }
    line = encode_result(hello)
    assert line == (
        b'{"v":1,"ok":true,"result":{"pid":4242,"config":"/home/me/kitefan.toml",'
        b'"version":"0.9.0","protocol":1,"started_at":1700000000.5,"metrics":null,'
        b'"shared":false}}\n'
    )
    assert decode_response(line) == Ok(hello)
    # Not ASCII-escaped: a symbol or a path is written as it is, in UTF-8.
    symbols = {"symbols": [{"instrument_token": 1, "symbol": "NSE:\u00e9", "mode": "ltp"}]}
    assert b'"NSE:\xc3\xa9"' in encode_result(symbols)
    assert decode_response(encode_result(symbols)) == Ok(symbols)


def test_the_change_document_is_typed_and_crosses_whole() -> None:
    change = ConfigChange(
        config="/c/kitefan.toml",
        applied=False,
        added=(PlacedSymbol(738561, "NSE:RELIANCE", "quote", "alpha", 0),),
        removed=(PlacedSymbol(408065, "NSE:INFY", "ltp", "bravo", 2),),
        moved=(MovedSymbol(256265, "NSE:NIFTY 50", "full", ("alpha", 1), ("bravo", 0)),),
        connections=(
            SlotCounts("alpha", 0, 1, 0, 0),
            SlotCounts("alpha", 1, 0, 1, 0),
            SlotCounts("bravo", 0, 1, 0, 0),
            SlotCounts("bravo", 2, 0, 1, 0),
        ),
        tokens=("bravo",),
    )
    line = encode_result(change.as_dict())
    assert line == (
        b'{"v":1,"ok":true,"result":{"config":"/c/kitefan.toml","applied":false,"subscribe":2,'
        b'"unsubscribe":2,"mode_changes":0,"added":[{"instrument_token":738561,'
        b'"symbol":"NSE:RELIANCE","mode":"quote","key":"alpha","connection":0}],"removed":'
        b'[{"instrument_token":408065,"symbol":"NSE:INFY","mode":"ltp","key":"bravo",'
        b'"connection":2}],"moved":[{"instrument_token":256265,"symbol":"NSE:NIFTY 50",'
        b'"mode":"full","from":{"key":"alpha","connection":1},"to":{"key":"bravo",'
        b'"connection":0}}],"mode_changed":[],"connections":[{"key":"alpha","connection":0,'
        b'"subscribe":1,"unsubscribe":0,"mode_changes":0},{"key":"alpha","connection":1,'
        b'"subscribe":0,"unsubscribe":1,"mode_changes":0},{"key":"bravo","connection":0,'
        b'"subscribe":1,"unsubscribe":0,"mode_changes":0},{"key":"bravo","connection":2,'
        b'"subscribe":0,"unsubscribe":1,"mode_changes":0}],"tokens":["bravo"],"warnings":[]}}\n'
    )
    answer = decode_response(line)
    assert isinstance(answer, Ok) and ConfigChange.from_dict(answer.result) == change


ERRORS: list[tuple[BaseException, bytes, type[KitefanError]]] = [
    (
        ConfigError("kitefan.toml", ["keys[0].api_key: missing", "symbols: none"]),
        b'{"kind":"config","message":"kitefan.toml: 2 problems: keys[0].api_key: missing; '
        b'symbols: none","source":"kitefan.toml","problems":["keys[0].api_key: missing",'
        b'"symbols: none"]}',
        ConfigError,
    ),
    (
        PlanError("over capacity", asked=500, fits=300, hint="drop 200 symbols"),
        b'{"kind":"plan","message":"over capacity; drop 200 symbols","reason":"over capacity",'
        b'"asked":500,"fits":300,"hint":"drop 200 symbols"}',
        PlanError,
    ),
    (
        FeedError("no key 'nobody' in the config"),
        b'{"kind":"feed","message":"no key \'nobody\' in the config"}',
        FeedError,
    ),
    (
        ControlError("the stream is starting: try again in a moment"),
        b'{"kind":"control","message":"the stream is starting: try again in a moment"}',
        ControlError,
    ),
    (
        RuntimeError("token=abcdef secret in here"),
        b'{"kind":"internal","message":"internal error in the stream (RuntimeError); run it '
        b'with --debug to see it"}',
        ControlError,
    ),
]


@pytest.mark.parametrize(("exc", "document", "raised"), ERRORS)
def test_each_error_kind_crosses_and_is_raised_again_alike(
    exc: BaseException, document: bytes, raised: type[KitefanError]
) -> None:
    line = encode_failure(error_document(exc))
    assert line == b'{"v":1,"ok":false,"error":' + document + b"}\n"
    answer = decode_response(line)
    assert isinstance(answer, Failure)
    again = answer.exception()
    assert type(again) is raised
    if isinstance(exc, KitefanError):
        assert str(again) == str(exc)
    else:
        assert "secret" not in str(again) and "RuntimeError" in str(again)
    if isinstance(exc, PlanError) and isinstance(again, PlanError):
        assert (again.reason, again.asked, again.fits, again.hint) == (
            exc.reason,
            exc.asked,
            exc.fits,
            exc.hint,
        )


def test_the_command_that_starts_a_stream_is_quoted_for_the_shell() -> None:
    assert str(StreamNotRunningError("/c/my kitefan.toml")) == (
        "no running stream for /c/my kitefan.toml: "
        "start one with `kitefan stream --config '/c/my kitefan.toml'`"
    )
    assert (
        StreamNotRunningError("/c/kitefan.toml").start == "kitefan stream --config /c/kitefan.toml"
    )


def test_another_kitefan_error_crosses_as_a_control_error_with_its_message() -> None:
    exc = StreamNotRunningError("/c/kitefan.toml")
    assert error_document(exc) == {"kind": "control", "message": str(exc)}


@pytest.mark.parametrize(
    ("document", "raised", "message"),
    [
        # A config error without its fields: its message, as a control error.
        ({"kind": "config", "message": "bad"}, ControlError, "bad"),
        ({"kind": "plan", "message": "no fit", "asked": "many"}, ControlError, "no fit"),
        ({"kind": "feed"}, FeedError, "the stream refused the request"),
        ({"kind": "weather", "message": "rain"}, ControlError, "rain"),
        ({}, ControlError, "the stream refused the request"),
    ],
)
def test_an_error_document_with_missing_or_unknown_fields_still_raises(
    document: dict[str, object], raised: type[KitefanError], message: str
) -> None:
    error = error_of(document)
    assert type(error) is raised and str(error) == message


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"v":1,"ok":false}\n', {"kind": "control", "message": "the stream refused the request"}),
        (
            b'{"v":1,"ok":false,"error":"nope"}\n',
            {"kind": "control", "message": "the stream refused the request"},
        ),
        (
            b'{"v":1,"ok":false,"error":{"kind":7,"message":["x"]}}\n',
            {"kind": "control", "message": "the stream refused the request"},
        ),
        (
            b'{"v":1,"ok":"yes","result":1}\n',
            {"kind": "control", "message": "the stream refused the request"},
        ),
    ],
)
def test_a_failure_missing_its_error_still_reads_as_one(line: bytes, error: ErrorDocument) -> None:
    assert decode_response(line) == Failure(error)


@pytest.mark.parametrize("line", [b"", b"garbage\n", b"[1]\n", b"\xff\n", b'"ok"\n'])
def test_a_line_that_is_not_a_response_is_garbage(line: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"^answered garbage$"):
        decode_response(line)


HELLO = {
    "pid": 4242,
    "config": "/c/kitefan.toml",
    "version": "0.9.0",
    "protocol": 1,
    "started_at": 1700000000,
    "metrics": "http://127.0.0.1:9108/metrics",
    "shared": True,
}


def test_a_hello_is_read_checked_and_an_older_one_gets_the_defaults() -> None:
    assert read_hello(HELLO) == {**HELLO, "started_at": 1700000000.0}
    older = {k: v for k, v in HELLO.items() if k not in ("metrics", "shared")}
    assert read_hello(older) == {
        **older,
        "started_at": 1700000000.0,
        "metrics": None,
        "shared": False,
    }


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([HELLO], "answered a hello that is not an object"),
        ({**HELLO, "pid": "4242"}, 'answered a hello without a "pid"'),
        ({**HELLO, "pid": True}, 'answered a hello without a "pid"'),
        ({k: v for k, v in HELLO.items() if k != "config"}, 'answered a hello without a "config"'),
        ({**HELLO, "started_at": None}, 'answered a hello without a "started_at"'),
    ],
)
def test_a_hello_that_is_not_one_is_refused(result: object, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_hello(result)
    assert str(caught.value) == message


SILENT = {
    "instrument_token": 408065,
    "symbol": "NSE:INFY",
    "mode": "ltp",
    "key": "a",
    "connection": -1,
}


def test_never_ticked_symbols_are_read_checked() -> None:
    assert read_never_ticked({"symbols": [SILENT]}) == [SILENT]
    assert read_never_ticked({"symbols": []}) == []
    results: list[object] = [None, {}, {"symbols": {}}, [SILENT]]
    for result in results:
        with pytest.raises(
            ProtocolError, match=r'^answered a never_ticked result without "symbols"$'
        ):
            read_never_ticked(result)
    for symbol in (
        {**SILENT, "instrument_token": "408065"},
        {**SILENT, "connection": 0.5},
        {k: v for k, v in SILENT.items() if k != "mode"},
        "NSE:INFY",
    ):
        with pytest.raises(
            ProtocolError, match=r"^answered a never_ticked symbol that is not one$"
        ):
            read_never_ticked({"symbols": [symbol]})


def test_a_change_is_read_and_one_that_is_not_is_refused() -> None:
    change = ConfigChange(config="/c/kitefan.toml", applied=True, tokens=("bravo",))
    assert read_change(change.as_dict()) == change
    broken = {**change.as_dict(), "added": [{"symbol": "NSE:INFY"}]}
    results: list[object] = [None, [], {}, broken, {**change.as_dict(), "moved": 3}]
    for result in results:
        with pytest.raises(ProtocolError, match=r"^answered a change that is not one$"):
            read_change(result)
