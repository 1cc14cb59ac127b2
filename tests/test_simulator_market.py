"""The simulator's market, pure: determinism, packet kinds, divisors, and believable values."""

from __future__ import annotations

import pytest

from kitefan.codec import LAYOUTS, decode_frame, encode_packet, frame_of_packets
from kitefan.models import Mode, PacketKind, Tick
from kitefan.simulator.market import (
    Change,
    InstrumentSeed,
    Market,
    assemble_frames,
    packet_kind,
    visible,
)

NOW = 1_700_023_531
INFY = 408065  # NSE, segment 1
NIFTY = 256265  # index, segment 9
SENSEX = 265  # index, segment 9
USDINR_CDS = (1050 << 8) | 3  # segment 3, divisor 1e7
USDINR_BCD = (1050 << 8) | 6  # segment 6, divisor 1e4
NFO = (35001 << 8) | 2
BFO = (35002 << 8) | 5
MCX = (53001 << 8) | 7
NCO = (1050 << 8) | 12
TRADABLE = [INFY, (500325 << 8) | 4, NFO, BFO, USDINR_CDS, USDINR_BCD, MCX, NCO, (7 << 8) | 8]
EVERY = [*TRADABLE, NIFTY, SENSEX]


def walk(market: Market, token: int, steps: int) -> list[tuple[Change, bytes]]:
    instrument = market.instrument(token, NOW)
    return [(instrument.step(NOW + i), instrument.packet(Mode.FULL)) for i in range(1, steps + 1)]


# Determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", EVERY)
def test_the_walk_of_a_token_depends_only_on_the_seed_and_the_token(token: int) -> None:
    alone = Market(seed=7)
    crowded = Market(seed=7)
    for other in (1, 2, 3, 999_999):
        crowded.instrument(other, NOW)
    first = walk(alone, token, 200)
    for other in (1, 2, 3, 999_999):
        crowded.step(other, NOW)
    assert walk(crowded, token, 200) == first


def test_another_seed_gives_another_walk() -> None:
    assert walk(Market(seed=1), INFY, 50) != walk(Market(seed=2), INFY, 50)


# Packet kinds and divisors ------------------------------------------------------------------


@pytest.mark.parametrize("token", TRADABLE)
@pytest.mark.parametrize(("mode", "length"), [(Mode.LTP, 8), (Mode.QUOTE, 44), (Mode.FULL, 184)])
def test_tradable_packets_by_mode(token: int, mode: Mode, length: int) -> None:
    instrument = Market().instrument(token, NOW)
    assert packet_kind(token, mode) == length
    assert len(instrument.packet(mode)) == length
    assert instrument.tick(mode).kind == length
    assert instrument.tick(mode).instrument_token == token


@pytest.mark.parametrize("token", [NIFTY, SENSEX])
@pytest.mark.parametrize(("mode", "length"), [(Mode.LTP, 8), (Mode.QUOTE, 28), (Mode.FULL, 32)])
def test_index_tokens_never_get_quote_or_full_packets(token: int, mode: Mode, length: int) -> None:
    market = Market()
    instrument = market.instrument(token, NOW)
    for i in range(300):
        instrument.step(NOW + i)
        instrument.trade(NOW + i // 7)
        assert len(instrument.packet(mode)) == length
    assert packet_kind(token, mode) == length
    assert instrument.tick(mode).tradable is False


@pytest.mark.parametrize("token", [USDINR_CDS, USDINR_BCD])
def test_currency_prices_decode_to_about_83_with_their_segment_divisor(token: int) -> None:
    instrument = Market(seed=3).instrument(token, NOW)
    for i in range(500):
        instrument.step(NOW + i)
        tick = instrument.tick(Mode.FULL)
        assert 80 < tick.last_price < 87
        assert tick.depth is not None
        assert all(80 < level.price < 87 for level in (*tick.depth.buy, *tick.depth.sell))
    raw_last = instrument.tick(Mode.LTP).values[1]
    if token == USDINR_CDS:  # 1e7: about 830,000,000 raw
        assert 800_000_000 < raw_last < 870_000_000
    else:  # 1e4: about 830,000 raw
        assert 800_000 < raw_last < 870_000


@pytest.mark.parametrize(
    ("token", "low", "high"),
    [
        (INFY, 40, 5_500),
        (NFO, 1, 550),
        (MCX, 900, 80_000),
        (NIFTY, 9_000, 85_000),
        (SENSEX, 9_000, 85_000),
    ],
)
@pytest.mark.parametrize("seed", range(5))
def test_prices_are_believable_for_the_segment(
    token: int, low: float, high: float, seed: int
) -> None:
    instrument = Market(seed=seed).instrument(token, NOW)
    for i in range(300):
        instrument.step(NOW + i)
        assert low < instrument.tick(Mode.LTP).last_price < high


def test_an_instruments_dump_seeds_price_tick_and_lot() -> None:
    seeds = {INFY: InstrumentSeed(last_price=1512.35, tick_size=0.05, lot_size=1)}
    instrument = Market(seeds=seeds).instrument(INFY, NOW)
    tick = instrument.tick(Mode.QUOTE)
    assert tick.ohlc is not None
    assert tick.ohlc.close == 1512.35  # the previous close is the dump's last price
    assert instrument.tick_size == 5  # 0.05 rupees in paise
    assert 1490 < tick.last_price < 1535


# Consistency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", TRADABLE)
def test_ohlc_volume_and_depth_stay_consistent_over_a_walk(token: int) -> None:
    instrument = Market(seed=11).instrument(token, NOW)
    first = instrument.tick(Mode.FULL)
    assert first.ohlc is not None
    open_, close = first.ohlc.open, first.ohlc.close
    volume = first.volume_traded
    assert volume is not None
    tick_size = instrument.tick_size / first.divisor
    for i in range(1, 400):
        change = instrument.step(NOW + i)
        tick = instrument.tick(Mode.FULL)
        ohlc, depth = tick.ohlc, tick.depth
        assert ohlc is not None
        assert depth is not None
        assert tick.volume_traded is not None
        assert tick.average_traded_price is not None
        assert tick.last_traded_quantity is not None
        assert (ohlc.open, ohlc.close) == (open_, close)
        assert ohlc.low <= tick.last_price <= ohlc.high
        assert ohlc.low <= ohlc.open <= ohlc.high
        assert ohlc.low <= tick.average_traded_price <= ohlc.high
        assert tick.last_traded_quantity > 0
        if change >= Change.QUOTE:
            assert tick.volume_traded > volume
            assert tick.last_trade_time == tick.exchange_timestamp
            assert tick.exchange_epoch_s == NOW + i
        else:
            assert tick.volume_traded == volume
        volume = tick.volume_traded
        bids = [level.price for level in depth.buy]
        offers = [level.price for level in depth.sell]
        assert bids == pytest.approx([tick.last_price - k * tick_size for k in range(1, 6)])
        assert offers == pytest.approx([tick.last_price + k * tick_size for k in range(1, 6)])
        for level in (*depth.buy, *depth.sell):
            assert 1 <= level.orders <= level.quantity
        assert tick.total_buy_quantity is not None
        assert tick.total_buy_quantity > 0
        assert tick.total_sell_quantity is not None
        assert tick.total_sell_quantity > 0


@pytest.mark.parametrize(
    ("token", "has_oi"), [(INFY, False), (NFO, True), (BFO, True), (MCX, True)]
)
def test_open_interest_only_for_derivative_segments(token: int, has_oi: bool) -> None:
    instrument = Market(seed=5).instrument(token, NOW)
    for i in range(200):
        instrument.step(NOW + i)
        tick = instrument.tick(Mode.FULL)
        assert tick.oi is not None
        assert tick.oi_day_low is not None
        assert tick.oi_day_high is not None
        if has_oi:
            assert 0 < tick.oi_day_low <= tick.oi <= tick.oi_day_high
        else:
            assert (tick.oi, tick.oi_day_high, tick.oi_day_low) == (0, 0, 0)


def test_index_change_field_is_signed_last_minus_close() -> None:
    signs = set()
    for seed in range(20):
        instrument = Market(seed=seed).instrument(NIFTY, NOW)
        for i in range(30):
            instrument.step(NOW + i)
            tick = instrument.tick(Mode.FULL)
            assert tick.ohlc is not None
            assert tick.index_change == pytest.approx(tick.last_price - tick.ohlc.close)
            signs.add(tick.values[6] < 0)
    assert signs == {True, False}  # both negative and positive changes occur


# Packets only when something changed ----------------------------------------------------------


@pytest.mark.parametrize("token", EVERY)
def test_a_step_changes_exactly_the_packets_its_change_says(token: int) -> None:
    instrument = Market(seed=2).instrument(token, NOW)
    seen = set()
    for i in range(1, 600):
        before = {mode: instrument.packet(mode) for mode in Mode}
        change = instrument.step(NOW + i)
        seen.add(change)
        for mode in Mode:
            assert (instrument.packet(mode) != before[mode]) == visible(change, mode), (
                change,
                mode,
            )
    expected = {Change.NONE, Change.LTP} if token in (NIFTY, SENSEX) else set(Change)
    assert seen == expected


def test_visibility_by_mode() -> None:
    assert [visible(Change.FULL, mode) for mode in Mode] == [False, False, True]
    assert [visible(Change.QUOTE, mode) for mode in Mode] == [False, True, True]
    assert [visible(Change.LTP, mode) for mode in Mode] == [True, True, True]
    assert [visible(Change.NONE, mode) for mode in Mode] == [False, False, False]


@pytest.mark.parametrize("token", EVERY)
def test_max_rate_trades_always_change_the_last_price_inside_the_book(token: int) -> None:
    instrument = Market(seed=9).instrument(token, NOW)
    last = instrument.tick(Mode.LTP).last_price
    volume = instrument.tick(Mode.FULL).volume_traded
    for i in range(2000):
        now = NOW + i // 300  # many trades per wall-clock second
        assert instrument.trade(now) is Change.LTP
        tick = instrument.tick(Mode.FULL)
        assert tick.last_price != last
        last = tick.last_price
        assert tick.ohlc is not None
        assert tick.ohlc.low <= tick.last_price <= tick.ohlc.high
        if tick.depth is not None:
            assert tick.depth.buy[0].price <= tick.last_price <= tick.depth.sell[0].price
            assert tick.volume_traded is not None
            assert volume is not None
            assert tick.volume_traded > volume
            volume = tick.volume_traded
        assert tick.exchange_epoch_s == now


@pytest.mark.parametrize("token", EVERY)
def test_cached_packets_are_exactly_the_codec_encoding_of_the_state(token: int) -> None:
    instrument = Market(seed=4).instrument(token, NOW)
    longest = PacketKind.INDEX_FULL if token in (NIFTY, SENSEX) else PacketKind.FULL
    for i in range(500):
        if i % 3:
            instrument.trade(NOW + i // 50)
        else:
            instrument.step(NOW + i // 50)
        assert instrument.packet(Mode.FULL) == encode_packet(Tick(longest, instrument.values()))
        for mode in Mode:
            kind = packet_kind(token, mode)
            packet = instrument.packet(mode)
            assert packet == instrument.packet(Mode.FULL)[:kind]
            assert instrument.tick(mode) == Tick(kind, LAYOUTS[kind].unpack(packet))


# Frames ---------------------------------------------------------------------------------------


def test_frames_are_the_codecs_framing_of_the_cached_packets() -> None:
    market = Market(seed=1)
    pairs = [(token, mode) for token in EVERY for mode in Mode]
    parts = [market.instrument(token, NOW).parts[mode] for token, mode in pairs]
    ((frame, count),) = assemble_frames(parts)
    assert count == len(pairs)
    assert frame == frame_of_packets([market.packet(t, m, NOW) for t, m in pairs])
    assert decode_frame(frame) == [market.tick(t, m, NOW) for t, m in pairs]


def test_frames_are_cut_by_size_and_by_count() -> None:
    market = Market()
    tokens = [((1000 + i) << 8) | 1 for i in range(1000)]
    full = [market.instrument(token, NOW).parts[Mode.FULL] for token in tokens]
    frames = assemble_frames(full, max_bytes=186 * 300 + 2)
    assert [count for _, count in frames] == [300, 300, 300, 100]
    assert [len(frame) for frame, _ in frames] == [2 + 186 * 300] * 3 + [2 + 186 * 100]
    ltp = [market.instrument(token, NOW).parts[Mode.LTP] for token in tokens]
    frames = assemble_frames(ltp, max_packets=256)
    assert [count for _, count in frames] == [256, 256, 256, 232]
    decoded = [tick.instrument_token for frame, _ in frames for tick in decode_frame(frame)]
    assert decoded == tokens


def test_every_token_is_accepted_but_not_beyond_32_bits() -> None:
    market = Market()
    for token in (0, 1, 0xFFFFFFFF, (123456 << 8) | 200):
        assert market.tick(token, Mode.QUOTE, NOW).instrument_token == token
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        market.instrument(1 << 32, NOW)
