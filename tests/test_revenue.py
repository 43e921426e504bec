"""revenue: money per UTC day, ISO week or month, computed by each engine's GROUP BY.

Every answer is checked against the same question answered in Python over the arranged
rows (periods computed here with the calendar, not with ordercli's code), including the
zero rows of periods without orders and the range rules of the contract.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections import defaultdict
from typing import Any

import pytest
from helpers import add_customer, add_order, describe, on_terminal, opened

FIELDS = ["period", "orders", "revenue_cents", "customers"]
UTC = datetime.UTC
D = datetime.datetime

# (customer, status, created_at (UTC), archived, total) — totals are one item each.
ORDERS = [
    ("a", "paid", D(2025, 12, 29, 0, 0, 0), False, 1000),  # a Monday
    ("b", "shipped", D(2026, 1, 4, 23, 59, 59, 500_000), False, 2000),  # that week's Sunday
    ("a", "paid", D(2026, 1, 5, 0, 0, 0), False, 500),  # the next Monday
    ("a", "draft", D(2026, 1, 5, 12, 0, 0), False, 9999),  # not paid: not counted
    ("b", "cancelled", D(2026, 1, 6, 8, 0, 0), False, 8888),  # not counted
    ("c", "paid", D(2026, 1, 7, 8, 0, 0), True, 7777),  # archived: not counted
    # February: nothing
    ("c", "paid", D(2026, 3, 15, 10, 0, 0), False, 300),
    ("c", "paid", D(2026, 3, 15, 11, 0, 0), False, 700),  # same customer, same day
    ("b", "shipped", D(2026, 3, 31, 23, 59, 59), False, 100),
    ("a", "shipped", D(2026, 4, 1, 0, 0, 0), False, 50),
]


def _start(moment: datetime.datetime | datetime.date, by: str) -> datetime.date:
    day = moment.date() if isinstance(moment, datetime.datetime) else moment
    if by == "day":
        return day
    if by == "week":
        return datetime.date.fromisocalendar(*day.isocalendar()[:2], 1)
    return datetime.date(day.year, day.month, 1)


def _following(start: datetime.date, by: str) -> datetime.date:
    if by == "day":
        return start + datetime.timedelta(days=1)
    if by == "week":
        return start + datetime.timedelta(weeks=1)
    return datetime.date(start.year + start.month // 12, start.month % 12 + 1, 1)


def expected(
    by: str,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
    orders: list[tuple[Any, ...]] = ORDERS,
) -> list[dict[str, Any]]:
    groups: dict[datetime.date, list[tuple[str, int]]] = defaultdict(list)
    for customer, status, when, archived, total in orders:
        if status not in ("paid", "shipped") or archived:
            continue
        if (since is not None and when < since) or (until is not None and when >= until):
            continue
        groups[_start(when, by)].append((customer, total))
    if since is not None:
        first = _start(since, by)
    elif groups:
        first = min(groups)
    else:
        return []
    if until is not None:
        last = _start(until - datetime.timedelta(microseconds=1), by)
    else:
        last = _start(now or datetime.datetime.now(UTC).replace(tzinfo=None), by)
    rows = []
    period = first
    while period <= last:
        sold = groups.get(period, [])
        rows.append(
            {
                "period": period.isoformat(),
                "orders": len(sold),
                "revenue_cents": sum(total for _, total in sold),
                "customers": len({customer for customer, _ in sold}),
            }
        )
        period = _following(period, by)
    return rows


@pytest.fixture
def shop_url(db_url: str) -> str:
    with opened(db_url):
        customers = {key: add_customer(f"{key}@example.com", key.upper()) for key in "abc"}
        for customer, status, when, archived, total in ORDERS:
            add_order(
                customers[customer],
                status,
                [("SKU-1", 1, total)],
                created_at=when,
                is_archived=archived,
            )
    return db_url


def _rows(cli: Any, url: str, *args: str) -> list[dict[str, Any]]:
    result = cli(url, "revenue", "--format", "json", *args)
    assert result.exit_code == 0, describe(result)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# (--since, --until) as given, and as naive UTC for the computation
WINDOWS = {
    "all": (None, None),
    "since": ("2026-01-01", None),
    "until-mid-day": (None, "2026-03-15T10:30"),
    "mid-week-to-date": ("2025-12-31T12:00", "2026-02-10"),
    "one-day-with-offset": ("2026-01-05T01:00+01:00", "2026-01-06T00:00Z"),
    "until-at-midnight": ("2026-03-01", "2026-04-01"),
    "only-until-at-midnight": (None, "2026-04-01"),
    "empty-window": ("2026-02-02", "2026-02-20"),
}


def _parsed(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@pytest.mark.parametrize("by", ["day", "week", "month"])
@pytest.mark.parametrize("window", list(WINDOWS))
def test_each_period_and_window_equals_an_independent_computation(cli, shop_url, by, window):
    since, until = WINDOWS[window]
    args = ["--by", by]
    if since:
        args += ["--since", since]
    if until:
        args += ["--until", until]
    rows = _rows(cli, shop_url, *args)
    assert rows == expected(by, _parsed(since), _parsed(until)), args
    assert rows, "every window here holds at least one period"


def test_empty_periods_are_zero_rows_and_the_default_is_month(cli, shop_url):
    rows = _rows(cli, shop_url, "--until", "2026-05-01")
    assert [(r["period"], r["orders"], r["revenue_cents"], r["customers"]) for r in rows] == [
        ("2025-12-01", 1, 1000, 1),
        ("2026-01-01", 2, 2500, 2),
        ("2026-02-01", 0, 0, 0),
        ("2026-03-01", 3, 1100, 2),
        ("2026-04-01", 1, 50, 1),
    ]
    weeks = _rows(cli, shop_url, "--by", "week", "--since", "2025-12-29", "--until", "2026-01-12")
    assert [(r["period"], r["revenue_cents"]) for r in weeks] == [
        ("2025-12-29", 3000),  # Monday 00:00 to Sunday 23:59:59.5
        ("2026-01-05", 500),
    ]


@pytest.mark.parametrize("spelling", ["MONTH", "Week", "DAY"])
def test_period_names_match_case_insensitively(cli, shop_url, spelling):
    window = ["--since", "2026-01-01", "--until", "2026-02-01"]
    assert _rows(cli, shop_url, "--by", spelling, *window) == expected(
        spelling.lower(), D(2026, 1, 1), D(2026, 2, 1)
    )


@pytest.mark.parametrize("period", ["year", "", "days", "quarter"])
def test_an_unknown_period_is_a_usage_error_naming_the_valid_ones(cli, shop_url, period):
    result = cli(shop_url, "revenue", "--by", period)
    assert result.exit_code == 2, describe(result)
    assert result.stdout == ""
    message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert "--by" in message and all(p in message for p in ("day", "week", "month")), message


def test_one_select_with_one_group_by(cli, shop_url):
    for by in ("day", "week", "month"):
        result = cli(shop_url, "revenue", "--by", by, "--since", "2026-01-01", echo=True)
        assert result.exit_code == 0, describe(result)
        assert len(result.sql) == 1 and len(result.selects) == 1, result.sql
        assert result.sql[0].upper().count("GROUP BY") == 1, result.sql


def test_json_and_csv_carry_the_rows_only(cli, shop_url):
    window = ["--since", "2026-03-01", "--until", "2026-04-01"]
    as_csv = cli(shop_url, "revenue", "--format", "csv", *window)
    assert as_csv.exit_code == 0, describe(as_csv)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        FIELDS,
        ["2026-03-01", "3", "1100", "2"],
    ]
    assert _rows(cli, shop_url, *window) == [
        {"period": "2026-03-01", "orders": 3, "revenue_cents": 1100, "customers": 2}
    ]


def test_no_orders_at_all(cli, db_url):
    assert _rows(cli, db_url) == []
    rows = _rows(cli, db_url, "--by", "week", "--since", "2026-01-01", "--until", "2026-01-15")
    assert [r["period"] for r in rows] == ["2025-12-29", "2026-01-05", "2026-01-12"]
    assert {(r["orders"], r["revenue_cents"], r["customers"]) for r in rows} == {(0, 0, 0)}
    table = cli(db_url, "revenue")
    assert (table.exit_code, table.stdout) == (0, ""), describe(table)
    assert table.stderr.strip(), "says there is nothing"


def _on_terminal(url: str, columns: int, *args: str) -> list[str]:
    """The command's stdout as drawn on a pseudo-terminal `columns` wide (ANSI removed)."""
    code, text, stderr = on_terminal(["--db", url, "revenue", *args], columns)
    assert code == 0, stderr
    return text.splitlines()


def _bar(line: str) -> float:
    """The length of the bar on a table line, in cells (eighths count)."""
    eighths = {ch: n for n, ch in enumerate(" ▏▎▍▌▋▊▉")}
    length = 0.0
    for ch in line:
        if ch == "█":
            length += 1
        elif ch in eighths and ch != " ":
            length += eighths[ch] / 8
    return length


@pytest.mark.subprocess
@pytest.mark.parametrize("columns", [80, 60, 120])
def test_a_bar_per_period_proportional_to_revenue_fits_the_terminal(shop_url, columns):
    window = ["--by", "week", "--since", "2025-12-29", "--until", "2026-04-06"]
    lines = _on_terminal(shop_url, columns, *window)
    want = expected("week", D(2025, 12, 29), D(2026, 4, 6))
    assert all(len(line) <= columns for line in lines), "\n".join(lines)
    rows = {}
    for row in want:
        found = [line for line in lines if row["period"] in line]
        assert len(found) == 1, (row, lines)
        rows[row["period"]] = found[0]
    largest = max(r["revenue_cents"] for r in want)
    full = _bar(rows[next(r["period"] for r in want if r["revenue_cents"] == largest)])
    assert full >= 8, "the longest bar uses the room the table leaves"
    for row in want:
        bar = _bar(rows[row["period"]])
        if row["revenue_cents"] == 0:
            assert bar == 0, rows[row["period"]]
        else:
            assert abs(bar - full * row["revenue_cents"] / largest) <= 1 / 8 + 1e-9, (row, bar)
            if columns >= 80:
                assert f"{row['revenue_cents'] / 100:,.2f}" in rows[row["period"]]
