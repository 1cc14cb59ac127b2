"""The simulator's handshake rules on the pure core (kitefan.simulator.admission): no server.

tests/integration/test_simulator.py and test_hostile_handshake.py keep the same refusals on the
wire (the status line, the body, the Location header).
"""

from __future__ import annotations

from http import HTTPStatus

from kitefan.simulator.admission import Admit, Refuse, admit

TOKENS = {"alpha-key": "alpha-token", "expired-key": None}


def decide(path: str, *, held: int = 0, **options: object) -> Admit | Refuse:
    return admit(
        path,
        tokens=TOKENS,
        open_slots=lambda api_key: held,
        max_connections=3,
        **options,  # type: ignore[arg-type]  # each case passes its own options
    )


def test_slots_are_counted_only_for_a_known_key_whose_token_passed() -> None:
    asked: list[str] = []

    def open_slots(api_key: str) -> int:
        asked.append(api_key)
        return 0

    for path in (
        "/?api_key=alpha-key&access_token=wrong",
        "/?api_key=beta-key&access_token=t",
        "/?api_key=alpha-key&access_token=alpha-token",
    ):
        admit(path, tokens=TOKENS, open_slots=open_slots, max_connections=3)
    admit(
        "/?api_key=beta-key&access_token=t",
        tokens=TOKENS,
        open_slots=open_slots,
        max_connections=3,
        any_credentials=True,
    )
    assert asked == ["alpha-key"]


def test_good_credentials_are_let_in() -> None:
    assert decide("/?api_key=alpha-key&access_token=alpha-token") == Admit(
        "alpha-key", "alpha-token"
    )
    assert decide("?api_key=alpha-key&access_token=alpha-token", held=2) == Admit(
        "alpha-key", "alpha-token"
    )


def test_the_refusals_in_the_order_the_ticker_checks() -> None:
    assert decide("/ws?api_key=alpha-key&access_token=alpha-token") == Refuse(
        HTTPStatus.NOT_FOUND, "the ticker is served at /"
    )
    assert decide("/?api_key=&access_token=") == Refuse(
        HTTPStatus.BAD_REQUEST, "missing api_key and access_token"
    )
    assert decide("/?api_key=alpha-key") == Refuse(HTTPStatus.BAD_REQUEST, "missing access_token")
    assert decide("/?api_key=beta-key&access_token=t") == Refuse(
        HTTPStatus.FORBIDDEN, "unknown api key"
    )
    assert decide("/?api_key=alpha-key&access_token=alpha-tokeN") == Refuse(
        HTTPStatus.FORBIDDEN, "invalid or expired access token", "alpha-key"
    )
    assert decide("/?api_key=expired-key&access_token=anything") == Refuse(
        HTTPStatus.FORBIDDEN, "invalid or expired access token", "expired-key"
    )
    assert decide("/?api_key=alpha-key&access_token=alpha-token", held=3) == Refuse(
        HTTPStatus.TOO_MANY_REQUESTS, "3 connections already open", "alpha-key"
    )


def test_a_redirect_fault_answers_every_handshake_first() -> None:
    fault = (HTTPStatus.FOUND, "https://elsewhere.example/")
    assert decide("/nowhere", redirect=fault) == Refuse(
        HTTPStatus.FOUND, "redirect fault", None, "https://elsewhere.example/"
    )
    assert decide("/", redirect=(HTTPStatus.MOVED_PERMANENTLY, None)) == Refuse(
        HTTPStatus.MOVED_PERMANENTLY, "redirect fault"
    )


def test_any_credentials_let_unknown_keys_in_as_new_accounts_within_the_slots() -> None:
    assert decide("/?api_key=beta-key&access_token=t", any_credentials=True) == Admit(
        "beta-key", "t", new=True
    )
    assert decide("/?api_key=alpha-key&access_token=wrong", any_credentials=True, held=1) == Admit(
        "alpha-key", "wrong"
    )
    assert decide("/?api_key=alpha-key&access_token=wrong", any_credentials=True, held=3) == Refuse(
        HTTPStatus.TOO_MANY_REQUESTS, "3 connections already open", "alpha-key"
    )
    # Both credentials are still required.
    assert decide("/?api_key=beta-key", any_credentials=True) == Refuse(
        HTTPStatus.BAD_REQUEST, "missing access_token"
    )
