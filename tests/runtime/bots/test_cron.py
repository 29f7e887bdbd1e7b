"""Cron evaluation in a time zone, DST, and the missed-occurrence policy (pure, injected times)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from runtime.bots.cron import (
    ON_TIME,
    CronError,
    label_problem,
    next_after,
    parse_cron,
    plan,
)

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo | None = BERLIN) -> float:
    """Unix seconds of a local wall time (fold 0)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone or UTC).timestamp()


def local(instant: float) -> str:
    return datetime.fromtimestamp(instant, BERLIN).isoformat()


def test_nine_oclock_in_berlin_is_nine_local_in_winter_and_in_summer() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Berlin")
    assert local(next_after(cron, at("2026-01-10T12:00"))) == "2026-01-11T09:00:00+01:00"
    assert local(next_after(cron, at("2026-07-10T12:00"))) == "2026-07-11T09:00:00+02:00"


def test_a_wall_time_skipped_by_spring_forward_runs_once_an_hour_later() -> None:
    """02:30 does not exist on 2026-03-29 in Berlin: it runs at 03:30 CEST, once."""
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    first = next_after(cron, at("2026-03-28T12:00"))
    assert local(first) == "2026-03-29T03:30:00+02:00"
    assert local(next_after(cron, first)) == "2026-03-30T02:30:00+02:00"


def test_hourly_on_a_spring_forward_day_never_runs_twice_at_one_instant() -> None:
    cron = parse_cron("0 * * * *", "Europe/Berlin")
    t, seen = at("2026-03-29T00:30"), []
    for _ in range(4):
        t = next_after(cron, t)
        seen.append(local(t))
    assert seen == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
        "2026-03-29T05:00:00+02:00",
    ]


def test_a_wall_time_repeated_by_fall_back_runs_once_the_first_time() -> None:
    """02:30 happens twice on 2026-10-25 in Berlin: it runs at the first (CEST) only."""
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    first = next_after(cron, at("2026-10-24T12:00"))
    assert local(first) == "2026-10-25T02:30:00+02:00"
    assert local(next_after(cron, first)) == "2026-10-26T02:30:00+01:00"


@pytest.mark.parametrize(
    ("expression", "timezone", "says"),
    [
        ("61 * * * *", "UTC", "not a valid cron"),
        ("* * * * * *", "UTC", "five fields"),
        ("", "UTC", "five fields"),
        ("0 0 31 2 *", "UTC", "never occurs"),
        ("0 9 * * *", "Mars/Olympus", "not a known IANA time zone"),
        ("0 9 * * *", "../../etc/passwd", "not a known IANA time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused_saying_why(
    expression: str, timezone: str, says: str
) -> None:
    with pytest.raises(CronError, match=says):
        parse_cron(expression, timezone)


def test_aliases_are_accepted() -> None:
    cron = parse_cron("@daily")
    assert next_after(cron, at("2026-01-01T10:00", None)) == at("2026-01-02T00:00", None)


MINUTELY = parse_cron("* * * * *")


def test_an_occurrence_looked_at_on_time_runs_and_nothing_is_skipped() -> None:
    due = at("2026-01-01T10:00", None)
    decided = plan(MINUTELY, due, due + 0.4, catch_up=0)
    assert (decided.run_at, decided.skipped) == (due, 0)
    assert decided.next_at == at("2026-01-01T10:01", None)


def test_after_downtime_within_catch_up_only_the_latest_occurrence_runs() -> None:
    """Down from 10:00 to 10:30:20 with catch_up 1 h: 10:30 runs, 10:00 to 10:29 are skipped."""
    due = at("2026-01-01T10:00", None)
    decided = plan(MINUTELY, due, at("2026-01-01T10:30:20", None), catch_up=3600)
    assert decided.run_at == at("2026-01-01T10:30", None)
    assert decided.skipped == 30
    assert decided.first_skipped == due
    assert decided.last_skipped == at("2026-01-01T10:29", None)
    assert decided.next_at == at("2026-01-01T10:31", None)


def test_a_daily_occurrence_older_than_catch_up_is_skipped_and_the_next_is_tomorrow() -> None:
    daily = parse_cron("0 9 * * *")
    due = at("2026-01-01T09:00", None)
    decided = plan(daily, due, at("2026-01-01T11:00", None), catch_up=3600)
    assert decided.run_at is None
    assert (decided.skipped, decided.first_skipped, decided.last_skipped) == (1, due, due)
    assert decided.next_at == at("2026-01-02T09:00", None)


def test_a_daily_occurrence_missed_within_catch_up_runs_once() -> None:
    daily = parse_cron("0 9 * * *")
    due = at("2026-01-01T09:00", None)
    decided = plan(daily, due, at("2026-01-01T09:40", None), catch_up=3600)
    assert (decided.run_at, decided.skipped) == (due, 0)


def test_catch_up_zero_still_runs_an_occurrence_at_most_on_time_old() -> None:
    daily = parse_cron("0 9 * * *")
    due = at("2026-01-01T09:00", None)
    assert plan(daily, due, due + ON_TIME, catch_up=0).run_at == due
    late = plan(daily, due, due + ON_TIME + 1, catch_up=0)
    assert (late.run_at, late.skipped) == (None, 1)


def test_weeks_of_downtime_of_a_minutely_schedule_are_counted_without_walking_forever() -> None:
    due = at("2026-01-01T00:00", None)
    now = at("2026-02-01T00:00:30", None)
    decided = plan(MINUTELY, due, now, catch_up=3600)
    assert decided.run_at == at("2026-02-01T00:00", None)
    assert decided.skipped >= 10_000 - 1
    assert decided.next_at == at("2026-02-01T00:01", None)


@pytest.mark.parametrize("label", ["reminder-42", "a", "user:7.daily_x", "x" * 64])
def test_good_labels(label: str) -> None:
    assert label_problem(label) is None


@pytest.mark.parametrize("label", ["", "x" * 65, "has space", "é", "a\nb", 42, None, ["a"]])
def test_bad_labels_are_refused(label: object) -> None:
    assert label_problem(label) is not None
