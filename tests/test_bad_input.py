"""Bad, odd and hostile input, one table: every option and argument of every command.

Each row runs on both backends against a small arranged dataset and checks the exit
code (2 usage error, 1 operational/domain error, 0 odd-but-valid input), that no
traceback is printed, that an error prints nothing on stdout (and, for exit 1, exactly
one `Error:` line on stderr), and that nothing was written: every row of customer,
orders, order_item and order_event is compared before and after. The few rows that
must write (cancel with an emoji reason, seed with a huge seed) check exactly what
was written instead. tests/test_errors.py has the basic cases; none is repeated here.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from faults import checked, record
from helpers import Run, add_customer, add_order, describe, opened

from ordercli.models import Customer, Order, OrderEvent, OrderItem

STATUSES = ("draft", "paid", "shipped", "cancelled")
FORMATS = ("table", "json", "csv")
PG_BASE = os.environ.get("ORDERCLI_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
SENTINEL = "S3ntinel"
T0 = datetime.datetime(2026, 1, 10, 12, 0, 0)
BOX = re.compile(r"[│╭╮╰╯─┃━]")
ANY_REASON = object()  # an event is written, with whatever text the argument decoded to

# Arranged customers: (key, email). The decoys would match if %, _ or \ were wildcards
# or escapes: "0%o" as a LIKE pattern matches 100o, "r_s" matches user.rxs, "k\s" as
# an escaped "s" matches backs.
CUSTOMERS = [
    ("alice", "alice@example.com"),
    ("bob", "bob@example.com"),
    ("pct", "100%off@shop.test"),
    ("pct_decoy", "100o@shop.test"),
    ("under", "under_score@shop.test"),
    ("under_decoy", "user.rxs@shop.test"),
    ("back", "back\\slash@shop.test"),
    ("back_decoy", "backs@shop.test"),
    ("quote", "o'brien@shop.test"),
    ("bang", "bang!@shop.test"),
    ("uni", "jürgen.größe@shop.test"),
    ("emoji", "unicorn🦄@shop.test"),
]
# Arranged orders: key -> (customer key, status, created_at offset in days, archived).
# Every customer other than alice/bob has one paid order named after the customer.
ORDERS: dict[str, tuple[str, str, int, bool]] = {
    "paid": ("alice", "paid", 0, False),
    "draft": ("alice", "draft", 1, False),
    "archived": ("alice", "paid", 2, True),
    "shipped": ("bob", "shipped", 3, False),
    "cancelled": ("bob", "cancelled", 4, False),
    **{key: (key, "paid", 5 + n, False) for n, (key, _) in enumerate(CUSTOMERS[2:])},
}
VISIBLE = tuple(key for key, (_, _, _, archived) in ORDERS.items() if not archived)


# --- arranging and checking ------------------------------------------------------------------


Snapshot = dict[str, list[tuple[Any, ...]]]


def _snapshot() -> Snapshot:
    return {
        "customer": list(Customer.select().order_by(Customer.id).tuples()),
        "orders": list(Order.select().order_by(Order.id).tuples()),
        "order_item": list(OrderItem.select().order_by(OrderItem.id).tuples()),
        "order_event": list(OrderEvent.select().order_by(OrderEvent.id).tuples()),
    }


def _arrange(url: str) -> tuple[dict[str, int], Snapshot]:
    """The customers and orders above and one event; returns ids by key and the snapshot."""
    with opened(url):
        customers = {key: add_customer(email, key.title()) for key, email in CUSTOMERS}
        ids: dict[str, int] = {}
        for key, (customer, status, days, archived) in ORDERS.items():
            ids[key] = add_order(
                customers[customer],
                status,
                [("SKU-1", 2, 499), ("SKU-2", 1, 1499)],
                created_at=T0 + datetime.timedelta(days=days),
                is_archived=archived,
            )
        OrderEvent.insert(
            order=ids["cancelled"],
            from_status="paid",
            to_status="cancelled",
            reason="arranged",
            actor="pytest",
            created_at=T0,
        ).execute()
        snapshot = _snapshot()
    ids["missing"] = max(ids.values()) + 1000
    ids["no_customer"] = max(customers.values()) + 1000
    return ids, snapshot


def _pg_url(password: str, scheme: str = "postgresql", port: int = 1) -> str:
    """The test server's host with a user, a password (as written) and a refused port."""
    parts = urlsplit(PG_BASE)
    host = parts.hostname or "127.0.0.1"
    return f"{scheme}://{parts.username or 'root'}:{password}@{host}:{port}/test"


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One row. Arguments are `str.format`ted with the arranged ids ({paid}, {missing}, ...),
    {url} (the test database) and the big numbers below; bytes arguments are sent as is
    (those rows run the installed script, a real argv)."""

    args: tuple[str | bytes, ...]
    exit: int | tuple[int, ...]  # a tuple only where the exit code is a choice
    mentions: tuple[str, ...] = ()  # in the Error: line, or in the usage message
    db: str | bytes = "{url}"  # --db
    listed: tuple[str, ...] | None = None  # exit 0: list --format json shows exactly these
    shown: str | None = None  # exit 0: show --format json shows this order
    event: tuple[str, Any] | None = None  # exit 0: (order, reason) one status event written
    moved: str = "cancelled"  # the status that event moves the order to
    found: tuple[str, ...] | None = None  # exit 0: customers --format json shows these
    seeded: int | None = None  # exit 0: seed --format json added this many orders
    secret: str | None = None  # never in any output (a password in the URL)


def row(
    command: str | list[str | bytes],
    exit: int | tuple[int, ...],
    *mentions: str,
    id: str,
    **kw: Any,
) -> Any:
    args = command.split(" ") if isinstance(command, str) else command
    return pytest.param(Case(tuple(args), exit, mentions, **kw), id=id)


BIG = {
    "trillion": str(10**12),
    "max_id": str(2**63 - 1),
    "int64_over": str(2**63),
    "uint64_over": str(2**64),
    "huge": str(10**30),
    "seed40": str(10**40),
}
INJECT = "'); DROP TABLE orders; --"
INJECT_DATE = "2026-01-01'; DROP TABLE orders; --"
PASSWORDS = {
    "lower-hex": "S3ntinel%40at%2fslash%25pct",
    "space-hash-question": "S3ntinel%20%23%3Fx",
    "plus-and-colon": "S3ntinel%3A%2B%40x",
}

CASES = [
    # --- seed: types and ranges of --count, --customers, --seed, --format ---------------------
    row("seed --count 1.5", 2, "--count", id="seed-count-float"),
    row(["seed", "--count", ""], 2, "--count", id="seed-count-empty"),
    row("seed --count 0x10", 2, "--count", id="seed-count-hex"),
    row("seed --count 1e3", 2, "--count", id="seed-count-exponent"),
    row("seed --count 1 --customers abc", 2, "--customers", id="seed-customers-abc"),
    row("seed --count 1 --customers -1", 2, "--customers", id="seed-customers-negative"),
    row("seed --count 1 --customers {trillion}", 2, "--customers", id="seed-customers-10**12"),
    row("seed --count 1 --customers ２", 2, "--customers", id="seed-customers-fullwidth-digit"),
    row("seed --count 1 --seed abc", 2, "--seed", id="seed-seed-abc"),
    row("seed --count 1 --seed 1.5", 2, "--seed", id="seed-seed-float"),
    row(["seed", "--count", "1", "--seed", ""], 2, "--seed", id="seed-seed-empty"),
    row("seed --count 1 --format xml", 2, "--format", *FORMATS, id="seed-format-xml"),
    row("seed --count 1 --format JSON", 0, id="seed-format-uppercase", seeded=1),
    row(
        "seed --count 2 --customers 1 --seed {seed40} --format json",
        0,
        id="seed-seed-10**40-is-a-valid-seed",
        seeded=2,
    ),
    row(
        "seed --count 1 --seed -{seed40} --format json",
        0,
        id="seed-seed-minus-10**40-is-a-valid-seed",
        seeded=1,
    ),
    # --- list: --limit, --customer, --status, --since/--until, --email, --format --------------
    row("list --limit abc", 2, "--limit", id="list-limit-abc"),
    row("list --limit 1.5", 2, "--limit", id="list-limit-float"),
    row(["list", "--limit", ""], 2, "--limit", id="list-limit-empty"),
    row("list --limit {huge}", 2, "--limit", id="list-limit-10**30"),
    row("list --limit {max_id} --format json", 0, id="list-limit-2**63-1-is-all", listed=VISIBLE),
    row("list --customer 0", 2, "--customer", id="list-customer-0"),
    row("list --customer -3", 2, "--customer", id="list-customer-negative"),
    row("list --customer abc", 2, "--customer", id="list-customer-abc"),
    row("list --customer 1.5", 2, "--customer", id="list-customer-float"),
    row("list --customer {uint64_over}", 2, "--customer", id="list-customer-2**64"),
    row(
        "list --customer {no_customer} --format json",
        0,
        id="list-customer-unknown-is-empty",
        listed=(),
    ),
    row(["list", "--status", ""], 2, "--status", *STATUSES, id="list-status-empty"),
    row("list --status SHIPPED -f json", 0, id="list-status-uppercase", listed=("shipped",)),
    row("list --status Draft -f Json", 0, id="list-status-mixed-case", listed=("draft",)),
    row(["list", "--status", "paid' OR '1'='1"], 2, "--status", id="list-status-sql-injection"),
    row("list --status paid --status nope", 2, "nope", id="list-status-second-unknown"),
    row(["list", "--since", ""], 2, "--since", id="list-since-empty"),
    row(["list", "--until", ""], 2, "--until", id="list-until-empty"),
    row("list --since 2026-13-01", 2, "--since", "2026-13-01", id="list-since-month-13"),
    row("list --until 2026-02-29", 2, "--until", "2026-02-29", id="list-until-feb-29-2026"),
    row("list --since 2026-01-01T25:00", 2, "--since", id="list-since-hour-25"),
    row("list --since 2026-01-01T23:60", 2, "--since", id="list-since-minute-60"),
    row("list --since 01/02/2026", 2, "--since", id="list-since-us-format"),
    row("list --since 2026-1-1", 2, "--since", id="list-since-unpadded"),
    row("list --since 2026-01-01T00:00+25:00", 2, "--since", id="list-since-offset-25h"),
    row(
        "list --since 0001-01-01T00:00:00+14:00",
        2,
        "--since",
        "9999",
        id="list-since-before-year-1-in-utc",
    ),
    row("summary --until 9999-12-31T23:00-05:00", 2, "--until", id="summary-until-after-9999"),
    row(["list", "--since", INJECT_DATE], 2, "--since", id="list-since-sql-injection"),
    row(
        "list --since 2026-01-10 --until 2026-01-10",
        2,
        "--since",
        "--until",
        id="list-since-equals-until",
    ),
    row(
        "list --since 2026-01-10T01:00+01:00 --until 2026-01-10T00:00Z",
        2,
        "--since",
        "--until",
        id="list-since-equals-until-across-offsets",
    ),
    row(["list", "--format", ""], 2, "--format", *FORMATS, id="list-format-empty"),
    row(
        ["list", "--email", "", "--format", "json"],
        0,
        id="list-email-empty-matches-all",
        listed=VISIBLE,
    ),
    row("list --email 😀 --format json", 0, id="list-email-emoji-no-match", listed=()),
    row("list --email 🦄 --format json", 0, id="list-email-emoji-match", listed=("emoji",)),
    row("list --email corn🦄@ --format json", 0, id="list-email-emoji-trigram", listed=("emoji",)),
    row("list --email ürgen.grö --format json", 0, id="list-email-unicode", listed=("uni",)),
    row(
        "list --email ALICE@EX --format json",
        0,
        id="list-email-ascii-case",
        listed=("draft", "paid"),
    ),
    row(
        ["list", "--email", "' OR 1=1 --", "--format", "json"],
        0,
        id="list-email-or-1=1",
        listed=(),
    ),
    row(["list", "--email", INJECT, "--format", "json"], 0, id="list-email-drop-table", listed=()),
    row(["list", "--email", "'", "--format", "json"], 0, id="list-email-quote", listed=("quote",)),
    row(
        ["list", "--email", "o'brien", "--format", "json"],
        0,
        id="list-email-quoted-name",
        listed=("quote",),
    ),
    row("list --email % --format json", 0, id="list-email-percent", listed=("pct",)),
    row("list --email 0%o --format json", 0, id="list-email-percent-trigram", listed=("pct",)),
    row("list --email %% --format json", 0, id="list-email-double-percent", listed=()),
    row("list --email _ --format json", 0, id="list-email-underscore", listed=("under",)),
    row("list --email r_s --format json", 0, id="list-email-underscore-trigram", listed=("under",)),
    row("list --email \\ --format json", 0, id="list-email-backslash", listed=("back",)),
    row("list --email k\\s --format json", 0, id="list-email-backslash-trigram", listed=("back",)),
    row("list --email ! --format json", 0, id="list-email-escape-char", listed=("bang",)),
    row("list --email g!@ --format json", 0, id="list-email-escape-char-trigram", listed=("bang",)),
    row(
        ["list", "--email", 'e" OR "b', "--format", "json"],
        0,
        id="list-email-fts-phrase-break",
        listed=(),
    ),
    row(
        ["list", "--email", "alice OR bob", "--format", "json"],
        0,
        id="list-email-fts-operator",
        listed=(),
    ),
    row("list --email ali* --format json", 0, id="list-email-fts-prefix", listed=()),
    row(
        ["list", "--email", "NEAR(alice bob)", "--format", "json"],
        0,
        id="list-email-fts-near",
        listed=(),
    ),
    # --- summary: --limit, --since/--until, --format ------------------------------------------
    row("summary --limit 1.5", 2, "--limit", id="summary-limit-float"),
    row(["summary", "--limit", ""], 2, "--limit", id="summary-limit-empty"),
    row("summary --limit {huge}", 2, "--limit", id="summary-limit-10**30"),
    row(["summary", "--since", ""], 2, "--since", id="summary-since-empty"),
    row("summary --until 2026-13-01", 2, "--until", id="summary-until-month-13"),
    row("summary --since 2026-02-29", 2, "--since", id="summary-since-feb-29-2026"),
    row("summary --until 2026-01-01T25:00", 2, "--until", id="summary-until-hour-25"),
    row(["summary", "--until", INJECT_DATE], 2, "--until", id="summary-until-sql-injection"),
    row(
        "summary --since 2026-01-10T00:00 --until 2026-01-10",
        2,
        "--since",
        id="summary-since-equals-until",
    ),
    row("summary --format CSV", 0, id="summary-format-uppercase"),
    # --- cancel: ids, --reason, --format ------------------------------------------------------
    row("cancel 1.5", 2, "order_id", id="cancel-id-float"),
    row("cancel 0x10", 2, "order_id", id="cancel-id-hex"),
    row("cancel 1e3", 2, "order_id", id="cancel-id-exponent"),
    row("cancel -0", 2, "-0", id="cancel-id-minus-zero"),
    row(["cancel", ""], 2, "order_id", id="cancel-id-empty"),
    row("cancel {paid} {uint64_over}", 2, "order_id", id="cancel-id-2**64"),
    row(["cancel", "{paid}", "--format", ""], 2, "--format", id="cancel-format-empty"),
    row(
        ["cancel", "{draft}", "--reason", "refund 🦄✨ — ok"],
        0,
        id="cancel-reason-emoji-is-stored-exactly",
        event=("draft", "refund 🦄✨ — ok"),
    ),
    row(
        ["cancel", "{paid}", "--reason", "Zoë: e\u0301 ≠ é, 日本語, \U0001f469\u200d\U0001f4bb"],
        0,
        id="cancel-reason-unicode-is-stored-exactly",
        event=("paid", "Zoë: e\u0301 ≠ é, 日本語, \U0001f469\u200d\U0001f4bb"),
    ),
    row(
        ["cancel", "{draft}", "--reason", INJECT],
        0,
        id="cancel-reason-sql-injection-is-stored-exactly",
        event=("draft", INJECT),
    ),
    row(
        ["cancel", "{paid}", "--reason", "100% off_\\n"],
        0,
        id="cancel-reason-wildcards-are-stored-exactly",
        event=("paid", "100% off_\\n"),
    ),
    row(
        ["cancel", "{draft}", "--reason", ""],
        0,
        id="cancel-reason-empty",
        event=("draft", ""),
    ),
    row(
        ["cancel", "{draft}", "{shipped}", "--reason", "🦄"],
        1,
        "{shipped}",
        id="cancel-shipped-with-emoji-reason-writes-nothing",
    ),
    row(
        ["cancel", "{draft}", "--dry-run", "--reason", INJECT, "--format", "json"],
        0,
        id="cancel-dry-run-with-injection-reason-writes-nothing",
    ),
    # --- pay and ship: ids, refusals, --reason, --dry-run, --format ---------------------------
    row("pay 1.5", 2, "order_id", id="pay-id-float"),
    row("pay 0x10", 2, "order_id", id="pay-id-hex"),
    row("pay -0", 2, "-0", id="pay-id-minus-zero"),
    row(["pay", ""], 2, "order_id", id="pay-id-empty"),
    row("pay", 2, "order_id", id="pay-no-ids"),
    row("pay {draft} {uint64_over}", 2, "order_id", id="pay-id-2**64"),
    row(["pay", "{draft}", "--format", ""], 2, "--format", id="pay-format-empty"),
    row("pay {draft} --format xml", 2, "--format", *FORMATS, id="pay-format-xml"),
    row("pay {draft} {shipped}", 1, "{shipped}", "shipped", id="pay-shipped-refused"),
    row("pay {cancelled} {draft}", 1, "{cancelled}", "cancelled", id="pay-cancelled-refused"),
    row("pay {draft} {missing}", 1, "{missing}", id="pay-unknown-id"),
    row("pay {draft} {max_id}", 1, "{max_id}", id="pay-id-2**63-1-not-found"),
    row("pay {paid} --format json", 0, id="pay-already-paid-writes-nothing"),
    row(
        ["pay", "{draft}", "--reason", "virement reçu 🦄 — ok"],
        0,
        id="pay-reason-unicode-is-stored-exactly",
        event=("draft", "virement reçu 🦄 — ok"),
        moved="paid",
    ),
    row(
        ["pay", "{draft}", "--reason", INJECT],
        0,
        id="pay-reason-sql-injection-is-stored-exactly",
        event=("draft", INJECT),
        moved="paid",
    ),
    row(
        ["pay", "{draft}", "--dry-run", "--reason", INJECT, "--format", "json"],
        0,
        id="pay-dry-run-writes-nothing",
    ),
    row(
        ["pay", "{draft}", "{shipped}", "--dry-run"],
        1,
        "{shipped}",
        id="pay-dry-run-has-the-same-refusals",
    ),
    row("ship 1e3", 2, "order_id", id="ship-id-exponent"),
    row("ship 0", 2, "order_id", id="ship-id-0"),
    row("ship -- -7", 2, "order_id", id="ship-id-negative-after-dashdash"),
    row("ship {paid} {int64_over}", 2, "order_id", id="ship-id-2**63"),
    row("ship {paid} --format JSONL", 2, "--format", *FORMATS, id="ship-format-jsonl"),
    row("ship {paid} {draft}", 1, "{draft}", "draft", id="ship-draft-refused"),
    row("ship {cancelled}", 1, "{cancelled}", "cancelled", id="ship-cancelled-refused"),
    row("ship {paid} {missing}", 1, "{missing}", id="ship-unknown-id"),
    row("ship {shipped} --format csv", 0, id="ship-already-shipped-writes-nothing"),
    row(
        ["ship", "{paid}", "--reason", "100% off_\\n 日本語"],
        0,
        id="ship-reason-wildcards-are-stored-exactly",
        event=("paid", "100% off_\\n 日本語"),
        moved="shipped",
    ),
    row(
        ["ship", "{archived}", "--reason", ""],
        0,
        id="ship-archived-order-too",
        event=("archived", ""),
        moved="shipped",
    ),
    # --- customers: --limit, --email, --name, --format ----------------------------------------
    row("customers --limit abc", 2, "--limit", id="customers-limit-abc"),
    row("customers --limit -1", 2, "--limit", id="customers-limit-negative"),
    row("customers --limit {huge}", 2, "--limit", id="customers-limit-10**30"),
    row("customers --format xml", 2, "--format", *FORMATS, id="customers-format-xml"),
    row(
        ["customers", "--email", "", "--format", "json"],
        0,
        id="customers-email-empty-matches-all",
        found=tuple(key for key, _ in CUSTOMERS),
    ),
    row("customers --email % --format json", 0, id="customers-email-percent", found=("pct",)),
    row("customers --email 0%o --format json", 0, id="customers-email-pct-3", found=("pct",)),
    row("customers --email r_s --format json", 0, id="customers-email-under", found=("under",)),
    row("customers --email k\\s --format json", 0, id="customers-email-back", found=("back",)),
    row("customers --email 🦄 --format json", 0, id="customers-email-emoji", found=("emoji",)),
    row(
        ["customers", "--email", 'e" OR "b', "--format", "json"],
        0,
        id="customers-email-fts-phrase-break",
        found=(),
    ),
    row(["customers", "--email", INJECT, "--format", "json"], 0, id="customers-inject", found=()),
    row(
        "customers --name _ --format json",
        0,
        id="customers-name-underscore-literal",
        found=("pct_decoy", "under_decoy", "back_decoy"),
    ),
    row("customers --name % --format json", 0, id="customers-name-percent-literal", found=()),
    row(
        ["customers", "--name", "' OR 1=1 --", "--format", "json"],
        0,
        id="customers-name-or-1=1",
        found=(),
    ),
    row("customers --name ALICE --format json", 0, id="customers-name-case", found=("alice",)),
    # --- revenue: --by, --since/--until, --format ---------------------------------------------
    row("revenue --by year", 2, "--by", "day", "week", "month", id="revenue-by-year"),
    row(["revenue", "--by", ""], 2, "--by", id="revenue-by-empty"),
    row(["revenue", "--by", "week' --"], 2, "--by", id="revenue-by-sql-injection"),
    row("revenue --by MONTH --format json", 0, id="revenue-by-uppercase"),
    row("revenue --since 2026-13-01", 2, "--since", id="revenue-since-month-13"),
    row(["revenue", "--until", INJECT_DATE], 2, "--until", id="revenue-until-sql-injection"),
    row(
        "revenue --since 2026-01-10 --until 2026-01-10",
        2,
        "--since",
        id="revenue-since-equals-until",
    ),
    row("revenue --format CSV2", 2, "--format", *FORMATS, id="revenue-format-csv2"),
    row(
        "revenue --by day --since 9999-12-30 --until 9999-12-31T23:59:59 --format json",
        0,
        id="revenue-last-days-of-year-9999",
    ),
    row(
        "revenue --by month --since 0001-01-01 --until 0001-03-01 --format csv",
        0,
        id="revenue-first-months-of-year-1",
    ),
    # --- show ---------------------------------------------------------------------------------
    row("show 1.5", 2, "order_id", id="show-id-float"),
    row("show 0x10", 2, "order_id", id="show-id-hex"),
    row("show 1e3", 2, "order_id", id="show-id-exponent"),
    row("show -0", 2, "-0", id="show-id-minus-zero"),
    row("show -- -7", 2, "order_id", id="show-id-negative-after-dashdash"),
    row(["show", ""], 2, "order_id", id="show-id-empty"),
    row("show {huge}", 2, "order_id", id="show-id-10**30"),
    row("show", 2, "order_id", id="show-no-id"),
    row("show {paid} {draft}", 2, "unexpected extra argument", id="show-two-ids"),
    row("show {paid} --format xml", 2, "--format", *FORMATS, id="show-format-xml"),
    # ORDER_ID is plain decimal digits: what int() would also take is a usage error.
    row(["show", " {paid}", "--format", "json"], 2, "order_id", id="show-id-leading-space"),
    row(["show", "{paid} "], 2, "order_id", id="show-id-trailing-space"),
    row(["show", "+{paid}", "--format", "json"], 2, "order_id", id="show-id-plus-sign"),
    row("show 1_0", 2, "order_id", "1_0", id="show-id-underscore"),
    row("show 8.0", 2, "order_id", id="show-id-point-zero"),
    row("show ٣", 2, "order_id", id="show-id-arabic-indic-digit"),
    row("cancel 1_0", 2, "order_id", id="cancel-id-underscore"),
    row("cancel {paid} +5", 2, "order_id", id="cancel-id-plus-sign"),
    row("archive ٣", 2, "order_id", id="archive-id-arabic-indic-digit"),
    row("list --customer +1", 2, "--customer", id="list-customer-plus-sign"),
    row("list --limit 1_0", 2, "--limit", id="list-limit-underscore"),
    row("seed --count ٣", 2, "--count", id="seed-count-arabic-indic-digit"),
    row(["show", "0{paid}", "--format", "json"], 0, id="show-id-leading-zero", shown="paid"),
    row(["show", "{max_id}"], 1, "{max_id}", id="show-id-2**63-1-not-found"),
    # --- archive ------------------------------------------------------------------------------
    row("archive 1.5", 2, "order_id", id="archive-id-float"),
    row("archive 0x10", 2, "order_id", id="archive-id-hex"),
    row("archive 1e3", 2, "order_id", id="archive-id-exponent"),
    row("archive -0", 2, "-0", id="archive-id-minus-zero"),
    row("archive 0", 2, "order_id", id="archive-id-0"),
    row("archive", 2, "order_id", id="archive-no-ids"),
    row("archive {paid} {int64_over}", 2, "order_id", id="archive-id-2**63"),
    row("archive {paid} {max_id}", 1, "{max_id}", id="archive-id-2**63-1-not-found"),
    row("archive {paid} --undo --format xml", 2, "--format", *FORMATS, id="archive-format-xml"),
    # --- --db ---------------------------------------------------------------------------------
    row("list", 1, id="db-empty", db=""),
    row("list", 1, id="db-blank", db="   "),
    row("list", 1, "mongodb", id="db-mongodb-scheme", db="mongodb://127.0.0.1/shop"),
    row("summary", 1, "http", id="db-http-scheme", db="http://127.0.0.1/shop"),
    row("show {paid}", 1, "sqlite3", id="db-sqlite3-scheme", db="sqlite3:///x.db"),
    row("cancel {paid}", 1, id="db-bare-path", db="orders.db"),
    row("list", 1, "host part", "orders.db", id="db-sqlite-two-slashes", db="sqlite://orders.db"),
    row("list", 1, id="db-sql-injection", db=f"postgresql://root@127.0.0.1:1/x{INJECT}"),
    *(
        row(
            "cancel {paid} --reason x",
            1,
            "refused",
            id=f"db-password-{name}",
            db=_pg_url(password),
            secret=password,
        )
        for name, password in PASSWORDS.items()
    ),
    row(
        "summary --format json",
        1,
        "refused",
        id="db-password-postgres-scheme",
        db=_pg_url(PASSWORDS["lower-hex"], scheme="postgres"),
        secret=PASSWORDS["lower-hex"],
    ),
    # --- non-UTF-8 bytes in a real argv (the installed script) --------------------------------
    row(
        [b"list", b"--email", b"\xff\xfe", b"--format", b"json"],
        (0, 1, 2),
        id="bytes-email",
        listed=(),
    ),
    row(
        [b"list", b"--email", b"ali\xffce", b"--format", b"json"],
        (0, 1, 2),
        id="bytes-email-trigram",
        listed=(),
    ),
    row(
        [b"cancel", b"{draft}", b"--reason", b"bad \xff"],
        (0, 1, 2),
        id="bytes-reason",
        event=("draft", ANY_REASON),
    ),  # fmt: skip
    row([b"list", b"--since", b"2026-01-01\xff"], 2, "--since", id="bytes-since"),
    row([b"list", b"--status", b"pa\xffid"], 2, "--status", id="bytes-status"),
    row([b"show", b"1\xff"], 2, "order_id", id="bytes-id"),
    row([b"list", b"--format", b"js\xffon"], 2, "--format", id="bytes-format"),
    row([b"list"], 1, id="bytes-db-scheme", db=b"\xff\xfe://127.0.0.1/shop"),
]


# --- running a row ---------------------------------------------------------------------------


def _format(arg: str | bytes, values: dict[str, str]) -> str | bytes:
    if isinstance(arg, bytes):
        return arg.replace(b"{draft}", values["draft"].encode())
    return arg.format(**values)


def _run_script(argv: list[str | bytes], cwd: Path) -> Run:
    """The installed console script with a raw argv (bytes are not valid UTF-8)."""
    script = Path(sys.executable).with_name("ordercli")
    command: list[str | bytes] = (
        [str(script)] if script.exists() else [sys.executable, "-m", "ordercli"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    env.update({"ORDERCLI_ACTOR": "pytest", "LC_ALL": "C.UTF-8"})
    done = subprocess.run(
        [*command, *argv], capture_output=True, env=env, cwd=cwd, timeout=120, check=False
    )
    return Run(done.returncode, _text(done.stdout), _text(done.stderr))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _flat(text: str) -> str:
    return " ".join(BOX.sub(" ", text).split())


def _check_output(case: Case, result: Run, values: dict[str, str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, describe(result)
    if case.secret is not None:
        for form in {case.secret, unquote(case.secret), SENTINEL}:
            assert form not in output, f"the password leaked as {form!r}:\n{describe(result)}"
    mentions = [fragment.format(**values) for fragment in case.mentions]
    if result.exit_code == 1:
        assert result.stdout == "", describe(result)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), describe(result)
        for fragment in mentions:
            assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in {lines[0]!r}"
    elif result.exit_code == 2:
        assert result.stdout == "", describe(result)
        message = _flat(result.stderr)
        assert "Usage: ordercli" in message, describe(result)
        for fragment in mentions:
            assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    else:
        assert result.exit_code == 0, describe(result)


def _check_listed(case: Case, result: Run, ids: dict[str, int]) -> None:
    rows = json.loads(result.stdout)
    wanted = sorted((ids[key] for key in case.listed or ()), reverse=True)
    assert [r["id"] for r in rows] == wanted, describe(result)


def _check_event(case: Case, url: str, before: Snapshot, ids: dict[str, int]) -> None:
    """Exactly one status change and its event; nothing else written."""
    assert case.event is not None
    key, reason = case.event
    order_id = ids[key]
    with opened(url):
        after = _snapshot()
        order = Order.get_by_id(order_id)
        events = list(OrderEvent.select().where(OrderEvent.id > before["order_event"][-1][0]))
    only = "a status change writes only its order and event"
    assert checked(only, after["customer"] == before["customer"])
    assert checked(only, after["order_item"] == before["order_item"])
    assert checked(
        only, after["order_event"][: len(before["order_event"])] == before["order_event"]
    )
    others = [r for r in after["orders"] if r[0] != order_id]
    assert checked(only, others == [r for r in before["orders"] if r[0] != order_id])
    assert order.status == case.moved
    assert len(events) == 1, events
    event = events[0]
    assert event.order_id == order_id
    assert (event.from_status, event.to_status, event.actor) == (
        ORDERS[key][1],
        case.moved,
        "pytest",
    )
    if reason is ANY_REASON:
        assert isinstance(event.reason, str) and event.reason
    elif reason == "":
        assert event.reason in ("", None), event.reason  # an empty reason may be stored as NULL
    else:
        assert event.reason == reason, (event.reason, reason)


def _check_seeded(case: Case, result: Run, url: str, before: Snapshot) -> None:
    report = json.loads(result.stdout)
    assert report["orders"] == case.seeded, report
    with opened(url):
        after = _snapshot()
    for table, rows in before.items():
        kept = after[table][: len(rows)] == rows
        assert checked("a seed changes no existing row", kept), (
            f"seed changed existing {table} rows"
        )
    assert len(after["orders"]) == len(before["orders"]) + case.seeded
    same = after["order_event"] == before["order_event"]
    assert checked("a seed writes no event", same), "seed writes no event"


@pytest.mark.parametrize("case", CASES)
def test_bad_input(db_url, cli, tmp_path, monkeypatch, case):
    record("bad inputs")
    ids, before = _arrange(db_url)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    values = {**{k: str(v) for k, v in ids.items()}, **BIG, "url": db_url}
    argv = [_format(arg, values) for arg in case.args]
    db = _format(case.db, values)
    if any(isinstance(a, bytes) for a in [db, *argv]):
        raw = [os.fsencode(a) if isinstance(a, str) else a for a in argv]
        result = _run_script([b"--db", os.fsencode(db), *raw], cwd)
    else:
        result = cli(str(db), *[str(a) for a in argv])

    allowed = case.exit if isinstance(case.exit, tuple) else (case.exit,)
    assert result.exit_code in allowed, describe(result)
    _check_output(case, result, values)
    if result.exit_code == 0 and case.listed is not None:
        _check_listed(case, result, ids)
    if result.exit_code == 0 and case.found is not None:
        emails = [row["email"] for row in json.loads(result.stdout)]
        wanted = [email for key, email in reversed(CUSTOMERS) if key in case.found]
        assert emails == wanted, describe(result)
    if result.exit_code == 0 and case.shown is not None:
        assert json.loads(result.stdout)["id"] == ids[case.shown], describe(result)
    if result.exit_code == 0 and case.event is not None:
        _check_event(case, db_url, before, ids)
    elif result.exit_code == 0 and case.seeded is not None:
        _check_seeded(case, result, db_url, before)
    else:
        with opened(db_url):
            after = _snapshot()
        for table, rows in before.items():
            assert checked("nothing written", after[table] == rows), f"{table} was written"
    created = sorted(p.name for p in cwd.iterdir())
    assert checked("no database created in the cwd", created == []), created
