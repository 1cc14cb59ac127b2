"""The candle builder (kitefan.candles): alignment to the session, the grace and late ticks, the
values of a bar, and random tick sequences against a brute-force recomputation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from kitefan import candles
from kitefan.candles import (
    DEFAULT_ANCHORS,
    Candle,
    CandleBuilder,
    bar_bounds,
    exchange_of_name,
    format_interval,
    parse_anchor,
    parse_interval,
)
from kitefan.codec import encode_frame, packet_runs, run_columns, run_rows
from kitefan.events import TickBatch
from kitefan.models import IST, Tick

NSE = (2885 << 8) | 1
NFO = (5001 << 8) | 2
CDS = (7001 << 8) | 3
MCX = (9001 << 8) | 7
INDEX = (256 << 8) | 9


def ist(text: str) -> int:
    """Unix seconds of an IST wall time ``YYYY-MM-DD HH:MM:SS``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=IST).timestamp())


def shown(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=IST).strftime("%Y-%m-%d %H:%M:%S")


def quote(token: int, price: int, volume: int) -> Tick:
    return Tick.quote(
        token,
        last_price=price,
        last_traded_quantity=1,
        average_traded_price=price,
        volume_traded=volume,
        total_buy_quantity=1,
        total_sell_quantity=1,
        open=price,
        high=price,
        low=price,
        close=price,
    )


def full(token: int, price: int, volume: int, ts: int, oi: int = 0) -> Tick:
    return Tick.full(
        quote(token, price, volume),
        last_trade_time=ts,
        oi=oi,
        oi_day_high=oi,
        oi_day_low=oi,
        exchange_timestamp=ts,
        depth=[(1, price, 1)] * 10,
    )


def batch(wall: float, *ticks: Tick) -> TickBatch:
    return TickBatch.of_ticks("k", 0, ticks, received_wall=wall)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_run_rows_reads_what_run_columns_reads_row_by_row() -> None:
    ts = ist("2026-12-01 09:15:00")
    frame = batch(
        0, *(full(NSE + (i << 8), 100 + i, 10 * i, ts + i, oi=i) for i in range(70))
    ).frame
    (run,) = packet_runs(frame)
    fields = (0, 1, 4, 12, 15)
    assert list(run_rows(frame, run, fields)) == list(
        zip(*run_columns(frame, run, fields), strict=True)
    )
    with pytest.raises(ValueError, match="field 16 is not an unsigned 4-byte field of 184-byte"):
        run_rows(frame, run, (16,))


# Parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("5s", 5), ("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400), ("90s", 90)],
)
def test_intervals_read_and_print_back(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds
    assert format_interval(seconds) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "'0s' is not between 1s and 1d"),
        ("2d", "'2d' is not between 1s and 1d"),
        ("1.5m", "'1.5m' is not an interval: give a whole number and a unit, like 5s, 1m, 15m"),
        ("m", "'m' is not an interval"),
        ("10", "'10' is not an interval"),
    ],
)
def test_bad_intervals_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        parse_interval(text)


def test_anchors_read_as_exchange_and_seconds_after_midnight() -> None:
    assert parse_anchor("mcx=09:00") == ("MCX", 9 * 3600)
    assert parse_anchor("NSE=09:15:30") == ("NSE", 9 * 3600 + 15 * 60 + 30)
    for bad in ("NSE", "NSE=9", "NSE=25:00", "NSE=09:60", "=09:15"):
        with pytest.raises(ValueError):
            parse_anchor(bad)
    assert exchange_of_name("BSE:SENSEX") == "BSE"
    assert exchange_of_name("738561") is None


# Alignment -------------------------------------------------------------------------------------


def test_default_anchors_per_exchange() -> None:
    assert {e: shown(ist("2026-12-01 00:00:00") + a)[11:] for e, a in DEFAULT_ANCHORS.items()} == {
        "NSE": "09:15:00",
        "NFO": "09:15:00",
        "BSE": "09:15:00",
        "BFO": "09:15:00",
        "CDS": "09:15:00",
        "BCD": "09:15:00",
        "MCXSX": "09:15:00",
        "MCX": "09:00:00",
        "NCO": "09:00:00",
    }


@pytest.mark.parametrize(
    ("at", "interval", "anchor", "start", "end"),
    [
        # 09:15 plus whole intervals, on either side of the anchor
        ("2026-12-01 09:15:00", 60, "09:15", "2026-12-01 09:15:00", "2026-12-01 09:16:00"),
        ("2026-12-01 09:15:59", 60, "09:15", "2026-12-01 09:15:00", "2026-12-01 09:16:00"),
        ("2026-12-01 09:29:59", 900, "09:15", "2026-12-01 09:15:00", "2026-12-01 09:30:00"),
        ("2026-12-01 09:14:59", 900, "09:15", "2026-12-01 09:00:00", "2026-12-01 09:15:00"),
        ("2026-12-01 10:14:59", 3600, "09:15", "2026-12-01 09:15:00", "2026-12-01 10:15:00"),
        ("2026-12-01 15:29:59", 3600, "09:15", "2026-12-01 15:15:00", "2026-12-01 16:15:00"),
        # MCX from 09:00
        ("2026-12-01 09:59:59", 3600, "09:00", "2026-12-01 09:00:00", "2026-12-01 10:00:00"),
        ("2026-12-01 23:29:00", 3600, "09:00", "2026-12-01 23:00:00", "2026-12-02 00:00:00"),
        # an interval that does not divide the day from the anchor: cut at midnight IST
        ("2026-12-01 23:50:00", 3600, "09:15", "2026-12-01 23:15:00", "2026-12-02 00:00:00"),
        ("2026-12-02 00:05:00", 3600, "09:15", "2026-12-02 00:00:00", "2026-12-02 00:15:00"),
        ("2026-12-02 00:20:00", 3600, "09:15", "2026-12-02 00:15:00", "2026-12-02 01:15:00"),
        ("2026-12-01 23:59:59", 420, "09:15", "2026-12-01 23:57:00", "2026-12-02 00:00:00"),
        # a day is the IST calendar day
        ("2026-12-01 08:00:00", 86400, "09:15", "2026-12-01 00:00:00", "2026-12-02 00:00:00"),
        ("2026-12-01 23:59:59", 86400, "09:00", "2026-12-01 00:00:00", "2026-12-02 00:00:00"),
        ("2026-12-02 00:00:00", 86400, "09:15", "2026-12-02 00:00:00", "2026-12-03 00:00:00"),
        # seconds, and a year away
        ("2027-03-31 09:15:07", 5, "09:15", "2027-03-31 09:15:05", "2027-03-31 09:15:10"),
    ],
)
def test_bars_align_to_the_session_anchor(
    at: str, interval: int, anchor: str, start: str, end: str
) -> None:
    offset = parse_anchor(f"X={anchor}")[1]
    got = bar_bounds(ist(at), interval, offset)
    assert (shown(got[0]), shown(got[1])) == (start, end)
    # a receive time (a float) between seconds lands in the same bar
    assert bar_bounds(ist(at) + 0.25, interval, offset) == got


def test_bars_tile_time_across_midnight_and_days() -> None:
    for interval in (1, 7, 60, 420, 900, 3600, 5400, 86400):
        t = ist("2026-12-01 20:00:00")
        end = bar_bounds(t, interval, DEFAULT_ANCHORS["NSE"])[1]
        stop = ist("2026-12-03 10:00:00")
        while end < stop:
            following = bar_bounds(end, interval, DEFAULT_ANCHORS["NSE"])
            assert following[0] == end, (interval, shown(end))
            assert 0 < following[1] - following[0] <= interval
            end = following[1]


def test_each_exchange_by_its_segment_and_a_name_overrides_it() -> None:
    t = ist("2026-12-01 09:40:10")
    builder = CandleBuilder(3600, clock=None)
    builder.add(batch(t, quote(NSE, 100_00, 10), quote(MCX, 5000_00, 10), quote(CDS, 83, 1)))
    starts = {
        token: shown(c.start)[11:] for token in (NSE, MCX, CDS) if (c := builder.forming(token))
    }
    assert starts == {NSE: "09:15:00", MCX: "09:00:00", CDS: "09:15:00"}
    # a name's exchange (segment 9 holds every exchange's indices), and an anchor of one's own
    named = CandleBuilder(
        3600, clock=None, exchange_of=lambda token: "MCX", anchors={"MCX": 9 * 3600 + 30 * 60}
    )
    named.add(batch(t, quote(INDEX, 100_00, 0)))
    forming = named.forming(INDEX)
    assert forming is not None and shown(forming.start)[11:] == "09:30:00"


# Closing, grace and late ticks -----------------------------------------------------------------


def test_a_bar_closes_at_its_end_plus_the_grace_and_a_tick_within_it_lands_in_its_bar() -> None:
    t0 = ist("2026-12-01 09:15:00")
    clock = Clock(t0 + 10)
    builder = CandleBuilder(60, clock=clock, grace=1.0)
    assert builder.add(batch(t0 + 10, full(NSE, 100_00, 1000, t0 + 10))) == []
    # 09:16:00.8: the next minute has started; a tick stamped 09:15:59 is within the grace
    clock.now = t0 + 60.8
    assert builder.add(batch(t0 + 60.8, full(NSE, 101_00, 1500, t0 + 60))) == []
    assert builder.add(batch(t0 + 60.8, full(NSE, 99_00, 1200, t0 + 59))) == []
    assert builder.close_due() == []
    clock.now = t0 + 61.0  # 09:16:01: the 09:15 bar closes
    (bar,) = builder.close_due()
    assert bar == Candle(
        NSE, 60, t0, t0 + 60, 100.0, 100.0, 99.0, 99.0, 200, 0, 2, "exchange", False
    )
    # late: stamped 09:15:58, arriving after 09:16:01; counted, not put in the 09:16 bar
    assert builder.add(batch(t0 + 61.0, full(NSE, 500_00, 1300, t0 + 58))) == []
    assert (builder.late, builder.late_by_token[NSE]) == (1, 1)
    clock.now = t0 + 121
    (second,) = builder.close_due()
    assert (second.open, second.high, second.low, second.close) == (101.0, 101.0, 101.0, 101.0)
    assert (second.volume, second.ticks) == (1500 - 1200, 1)
    assert (builder.ticks, builder.closed, builder.forming_bars) == (4, 2, 0)


def test_without_a_clock_the_receive_times_are_the_clock() -> None:
    t0 = ist("2026-12-01 09:15:00")
    builder = CandleBuilder(1, clock=None, grace=0.5)
    assert builder.add(batch(t0 + 0.1, quote(NSE, 100_00, 10))) == []
    assert builder.add(batch(t0 + 1.2, quote(NSE, 101_00, 11))) == []
    (bar,) = builder.add(batch(t0 + 1.6, quote(NSE, 102_00, 12)))
    assert (bar.start, bar.end, bar.close, bar.time_source, bar.volume) == (
        t0,
        t0 + 1,
        100.0,
        "receive",
        0,
    )
    rest = builder.flush()
    assert [(c.start, c.open, c.close, c.ticks, c.volume, c.partial) for c in rest] == [
        (t0 + 1, 101.0, 102.0, 2, 2, True)
    ]


def test_volume_is_the_increase_of_the_day_volume_and_null_without_one() -> None:
    t0 = ist("2026-12-01 09:15:00")
    builder = CandleBuilder(60, clock=None, grace=0)
    builder.add(batch(t0 + 1, quote(NSE, 100_00, 5000), Tick.ltp(NFO, 200_00)))
    builder.add(batch(t0 + 2, quote(NSE, 100_50, 5600), Tick.ltp(NFO, 201_00)))
    first = builder.add(batch(t0 + 61, quote(NSE, 100_00, 5900), Tick.ltp(NFO, 202_00)))
    assert {c.instrument_token: (c.volume, c.oi) for c in first} == {
        NSE: (600, None),  # its first bar: from its first tick's volume
        NFO: (None, None),  # LTP mode carries no volume
    }
    # a new session: the day volume starts again, from 0
    builder.add(batch(t0 + 62, quote(NSE, 100_00, 6000)))
    later = builder.add(batch(t0 + 130, quote(NSE, 100_00, 40)))
    assert [(c.instrument_token, c.volume) for c in later] == [(NSE, 6000 - 5600), (NFO, None)]
    bar = next(
        c for c in builder.add(batch(t0 + 190, quote(NSE, 1, 1))) if c.instrument_token == NSE
    )
    assert bar.volume == 40  # 40 < 6000: counted from 0


def test_oi_is_the_last_ticks_and_cds_prices_use_its_divisor() -> None:
    t0 = ist("2026-12-01 09:15:00")
    builder = CandleBuilder(60, clock=None, grace=0)
    builder.add(
        batch(t0 + 1, full(NFO, 2000_00, 10, t0 + 1, oi=700), full(CDS, 83_1234500, 1, t0 + 1))
    )
    builder.add(batch(t0 + 2, full(NFO, 2001_00, 11, t0 + 2, oi=650)))
    bars = builder.add(batch(t0 + 61, full(NFO, 1, 12, t0 + 61)))
    by = {c.instrument_token: c for c in bars}
    assert by[NFO].oi == 650
    assert by[CDS].close == 83.12345


def test_a_packet_without_an_exchange_timestamp_is_put_at_its_receive_time() -> None:
    t0 = ist("2026-12-01 09:15:00")
    builder = CandleBuilder(60, clock=None, grace=0)
    builder.add(batch(t0 + 30, full(NSE, 100_00, 10, t0 + 20), full(NFO, 5_00, 1, 0)))
    builder.add(batch(t0 + 40, quote(NSE, 101_00, 11)))
    bars = builder.flush()
    assert [(c.instrument_token, c.time_source, c.ticks) for c in bars] == [
        (NSE, "mixed", 2),
        (NFO, "receive", 1),
    ]


def test_fill_writes_flat_bars_at_the_previous_close() -> None:
    t0 = ist("2026-12-01 09:15:00")
    builder = CandleBuilder(60, clock=None, grace=1, fill=True)
    builder.add(batch(t0 + 5, full(NSE, 100_00, 10, t0 + 5, oi=3)))
    out = builder.add(batch(t0 + 190, full(NSE, 103_00, 19, t0 + 189, oi=4)))
    assert [(shown(c.start)[11:], c.open, c.close, c.volume, c.oi, c.ticks) for c in out] == [
        ("09:15:00", 100.0, 100.0, 0, 3, 1),
        ("09:16:00", 100.0, 100.0, 0, 3, 0),
        ("09:17:00", 100.0, 100.0, 0, 3, 0),
    ]
    out = builder.close_due(t0 + 301)
    assert [(shown(c.start)[11:], c.close, c.volume, c.ticks) for c in out] == [
        ("09:18:00", 103.0, 9, 1),
        ("09:19:00", 103.0, 0, 0),
    ]
    assert (builder.closed, builder.filled) == (5, 3)
    # without fill, an interval with no tick has no bar
    plain = CandleBuilder(60, clock=None, grace=1)
    plain.add(batch(t0 + 5, full(NSE, 100_00, 10, t0 + 5)))
    assert len(plain.add(batch(t0 + 190, full(NSE, 103_00, 19, t0 + 189)))) == 1


def test_add_ticks_takes_tick_objects_as_add_takes_their_frame() -> None:
    t0 = ist("2026-12-01 09:15:00")
    ticks = [
        full(NSE, 100_00, 10, t0 + 1),
        quote(NFO, 50_00, 3),
        Tick.ltp(CDS, 83_0000000),
        Tick.index(INDEX, last_price=1, high=1, low=1, open=1, close=1, change=0),
        Tick.index(
            INDEX + 256,
            last_price=2,
            high=2,
            low=2,
            open=2,
            close=2,
            change=-1,
            exchange_timestamp=t0 + 2,
        ),
    ]
    one = CandleBuilder(60, clock=None)
    one.add(batch(t0 + 3, *ticks))
    other = CandleBuilder(60, clock=None)
    other.add_ticks(ticks, t0 + 3)
    assert one.flush() == other.flush()
    assert one.ticks == other.ticks == 5


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval must be whole seconds from 1 to 86400"):
        CandleBuilder(0, clock=None)
    with pytest.raises(ValueError, match="grace must be 0 or more seconds"):
        CandleBuilder(60, clock=None, grace=-1)


# Random tick sequences against a brute-force recomputation --------------------------------------

TOKENS = (NSE, NFO, CDS, MCX)
T0 = ist("2026-12-01 09:14:50")


@dataclass(frozen=True)
class Step:
    """One frame: it arrives at ``wall``, and the clock reads ``wall + delay`` when it is added."""

    wall: float
    delay: float
    ticks: tuple[Tick, ...]


@st.composite
def steps(draw: st.DrawFn) -> list[Step]:
    out = []
    wall = T0 + draw(st.floats(0, 5))
    volume = dict.fromkeys(TOKENS, 0)
    for _ in range(draw(st.integers(1, 40))):
        wall += draw(st.sampled_from([0.0, 0.1, 0.4, 0.9, 1.0, 1.7, 3.0, 61.0]))
        ticks = []
        for _ in range(draw(st.integers(0, 6))):
            token = draw(st.sampled_from(TOKENS))
            price = draw(st.integers(1, 10_000))
            volume[token] += draw(st.integers(0, 50))
            kind = draw(st.sampled_from(["full", "full", "quote", "ltp", "nostamp"]))
            if kind == "full":
                lag = draw(st.integers(0, 4))
                ticks.append(full(token, price, volume[token], int(wall) - lag, oi=price % 7))
            elif kind == "nostamp":
                ticks.append(full(token, price, volume[token], 0))
            elif kind == "quote":
                ticks.append(quote(token, price, volume[token]))
            else:
                ticks.append(Tick.ltp(token, price))
        out.append(Step(wall, draw(st.sampled_from([0.0, 0.2, 1.5])), tuple(ticks)))
    return out


def brute_force(
    run: Sequence[Step], interval: int, grace: float
) -> tuple[dict[tuple[int, int], list[tuple[Tick, float]]], int]:
    """Every tick's bar by the rules, written out plainly: the bar of its time, unless that bar's
    end plus the grace had passed on the clock when it was added (late)."""
    groups: dict[tuple[int, int], list[tuple[Tick, float]]] = defaultdict(list)
    late = 0
    now = float("-inf")
    for step in run:
        now = max(now, step.wall + step.delay)
        for tick in step.ticks:
            t = tick.exchange_epoch_s or step.wall
            anchor = DEFAULT_ANCHORS["MCX" if tick.segment == 7 else "NSE"]
            start, end = bar_bounds(t, interval, anchor)
            if end + grace <= now:
                late += 1
            else:
                groups[(tick.instrument_token, start)].append((tick, step.wall))
    return groups, late


def run_builder(
    run: Sequence[Step], interval: int, grace: float
) -> tuple[CandleBuilder, list[Candle], list[Candle]]:
    """The builder after the run (the clock at each step's wall plus its delay), the bars it
    closed, and the forming ones its flush handed back."""
    clock = Clock(float("-inf"))
    builder = CandleBuilder(interval, clock=clock, grace=grace)
    closed: list[Candle] = []
    for step in run:
        clock.now = step.wall + step.delay
        closed += builder.add(batch(step.wall, *step.ticks))
    return builder, closed, builder.flush()


@settings(max_examples=150, deadline=None)
@given(run=steps(), interval=st.sampled_from([1, 5, 60, 3600]), grace=st.sampled_from([0, 1, 2.5]))
def test_random_ticks_land_once_and_bars_equal_a_brute_force_recomputation(
    run: list[Step], interval: int, grace: float
) -> None:
    builder, closed, partial = run_builder(run, interval, grace)
    groups, late = brute_force(run, interval, grace)
    total = sum(len(step.ticks) for step in run)
    # every tick is in exactly one bar, or late
    assert builder.late == late
    assert sum(c.ticks for c in closed + partial) + late == total == builder.ticks
    assert all(not c.partial for c in closed) and all(c.partial for c in partial)
    bars = {(c.instrument_token, c.start): c for c in closed + partial}
    assert len(bars) == len(closed) + len(partial)  # no bar twice
    assert set(bars) == set(groups)
    # closed bars come out in order of end, and each had ended by the grace when it came out
    assert [c.end for c in closed] == sorted(c.end for c in closed)
    previous_volume: dict[int, int | None] = {}
    for key in sorted(groups, key=lambda k: (k[0], k[1])):
        token = key[0]
        members = groups[key]
        prices = [tick.values[1] / tick.divisor for tick, _ in members]
        bar = bars[key]
        assert (bar.open, bar.high, bar.low, bar.close) == (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
        )
        assert bar.ticks == len(members)
        sources = {"exchange" if tick.exchange_epoch_s else "receive" for tick, _ in members}
        assert bar.time_source == (sources.pop() if len(sources) == 1 else "mixed")
        volumes = [tick.volume_traded for tick, _ in members if tick.volume_traded is not None]
        if not volumes:
            assert bar.volume is None
        else:
            base = previous_volume.get(token)
            base = volumes[0] if base is None else base
            assert bar.volume == (volumes[-1] - base if volumes[-1] >= base else volumes[-1])
            previous_volume[token] = volumes[-1]
        assert bar.oi == members[-1][0].oi
        anchor = DEFAULT_ANCHORS["MCX" if token & 0xFF == 7 else "NSE"]
        assert bar_bounds(bar.start, interval, anchor) == (bar.start, bar.end)


@settings(max_examples=100, deadline=None)
@given(run=steps(), interval=st.sampled_from([1, 60]), grace=st.sampled_from([0, 1]))
def test_the_compiled_fold_gives_the_bars_of_the_python_hot_path(
    run: list[Step], interval: int, grace: float
) -> None:
    assert candles._FOLD is not None  # the supported installs compile kitefan/_records.c
    built, closed, partial = run_builder(run, interval, grace)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(candles, "_FOLD", None)
        python, python_closed, python_partial = run_builder(run, interval, grace)
    assert (closed, partial) == (python_closed, python_partial)
    assert (built.ticks, built.late, built.closed) == (python.ticks, python.late, python.closed)


def test_the_fold_updates_a_bar_that_holds_the_tick_and_hands_on_the_others_in_order() -> None:
    from kitefan import _records

    # three full packets: token 7 at t=100 (in its bar), token 8 (no bar), token 7 at t=200
    # (past its bar's end)
    frame = encode_frame(
        [full(7, 150, 40, 100, oi=3), full(8, 99, 1, 100), full(7, 90, 41, 200, oi=4)]
    )
    bar: list[object] = [60, 120, 120, 130, 110, 125, 2, 30, 35, 1, 1]
    lane: dict[int, list[object]] = {7: bar}
    missed: list[tuple[int, ...]] = []

    def miss(*values: int) -> None:
        missed.append(values)

    run = packet_runs(frame)[0]
    words = bytes(candles._FULL_FIELDS)
    _records.fold(frame, run[0], run[2], 186, words, lane, miss)
    assert bar == [60, 120, 120, 150, 110, 150, 3, 30, 40, 3, 1]  # high, close, ticks, vol, oi
    assert missed == [(8, 99, 1, 0, 100), (7, 90, 41, 4, 200)]
    # a low, and a bar the miss puts in the lane is used by the next packet
    frame = encode_frame([full(9, 50, 5, 100), full(9, 40, 6, 101)])

    def place(token: int, price: int, vol: int, oi: int, t: int) -> None:
        lane[token] = [60, 120, price, price, price, price, 1, vol, vol, oi, 1]

    assert _records.fold(frame, 4, 2, 186, words, lane, place) is True
    assert lane[9] == [60, 120, 50, 50, 40, 40, 2, 5, 6, 0, 1]


def test_a_whole_frame_is_folded_only_when_every_packet_is_of_the_run() -> None:
    from kitefan import _records

    words = bytes(candles._FULL_FIELDS)
    missed: list[tuple[int, ...]] = []

    def miss(*values: int) -> None:
        missed.append(values)

    frame = encode_frame([full(7, 150, 40, 100), full(8, 99, 1, 100)])
    assert _records.fold(frame, 4, 2, 186, words, {}, miss, True) is True
    assert [m[0] for m in missed] == [7, 8]
    # the second packet's length field says 183: not one run, nothing done
    bent = bytearray(frame)
    bent[2 + 186 + 1] = 183
    missed.clear()
    assert _records.fold(bytes(bent), 4, 2, 186, words, {}, miss, True) is False
    assert missed == []
    with pytest.raises(ValueError, match=r"^fold: a whole frame is count packets from 4$"):
        _records.fold(frame, 4, 1, 186, words, {}, miss, True)


def test_the_fold_refuses_packets_past_the_frame_and_passes_on_what_miss_raises() -> None:
    from kitefan import _records

    frame = encode_frame([full(7, 150, 40, 100)])
    words = bytes(candles._FULL_FIELDS)
    for offset, count, step in [(4, 2, 186), (130, 1, 186), (4, 1, 60), (-1, 1, 186)]:
        with pytest.raises(ValueError, match=r"^fold: the packets run past the frame$"):
            _records.fold(frame, offset, count, step, words, {}, print)
    with pytest.raises(ValueError, match=r"^fold: words must be 5 word indexes$"):
        _records.fold(frame, 4, 1, 186, words[:4], {}, print)

    def refuse(*_: int) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match=r"^no$"):
        _records.fold(frame, 4, 1, 186, words, {}, refuse)
