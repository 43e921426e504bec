"""Peewee `insert_many` for large volumes, compiled once per statement shape.

Profiling `seed` showed Peewee spending ~75 % of the run turning each batch's
`insert_many` into SQL text: the text depends only on the number of rows, yet it was
rebuilt for every batch. Here rows go out in statements whose sizes are powers of two — as
many of the widest size the bind-parameter limit allows as fit, the rest split by its
binary digits — so there are at most ~15 shapes, each compiled by Peewee once, and the
driver sees the same statement text again (sqlite3's statement cache, psycopg's prepared
statements) and can skip parsing it too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import peewee

from ordercli.db import Connection


def largest_power_of_two(limit: int) -> int:
    """The largest power of two not above `limit` (at least 1)."""
    return 1 << max(limit.bit_length() - 1, 0)


class BulkInsert:
    """INSERT … VALUES (…), (…) of `fields` into `model` on `conn`, optionally RETURNING
    columns.

    With `ignore_conflicts`, rows that would violate a unique constraint are skipped
    (and, with `returning`, simply not returned)."""

    def __init__(
        self,
        conn: Connection,
        model: type[peewee.Model],
        fields: Sequence[peewee.Field],
        returning: Sequence[peewee.Field] = (),
        ignore_conflicts: bool = False,
    ) -> None:
        self.conn = conn
        self.model = model
        self.fields = list(fields)
        self.returning = list(returning)
        self.ignore_conflicts = ignore_conflicts
        # The widest power-of-two statement the backend's bind-parameter limit allows.
        self.rows_per_statement = largest_power_of_two(conn.max_bind_params() // len(self.fields))
        self._sql: dict[int, str] = {}
        self._pattern: tuple[str, str, str] | tuple[()] | None = None

    def sql(self, rows: int) -> str:
        """The statement for `rows` rows, as Peewee's insert_many writes it."""
        cached = self._sql.get(rows)
        if cached is None:
            cached = self._sql[rows] = self._widen(rows) or self._compile(rows)
        return cached

    def _compile(self, rows: int) -> str:
        template = [tuple(None for _ in self.fields)] * rows
        query = self.model.insert_many(template, fields=self.fields)
        if self.ignore_conflicts:
            query = query.on_conflict_ignore()
        if self.returning:
            query = query.returning(*self.returning)
        sql, params = self.conn.sql(query)
        if len(params) != rows * len(self.fields):
            raise RuntimeError(f"{self.model.__name__} insert has unexpected columns")
        return sql

    def _widen(self, rows: int) -> str | None:
        """Peewee's one-row statement with its VALUES tuple repeated `rows` times.

        Compiling thousands of rows costs Peewee ~20 us a row; repeating the tuple it
        wrote for one row costs nothing. Trusted only if the two-row statement built
        this way is exactly the one Peewee writes; otherwise every size is compiled."""
        if self._pattern is None:
            self._pattern = self._row_pattern()
        if not self._pattern:
            return None
        head, row, tail = self._pattern
        return head + ", ".join(itertools.repeat(row, rows)) + tail

    def _row_pattern(self) -> tuple[str, str, str] | tuple[()]:
        one = self._compile(1)
        start = one.find(" VALUES (") + len(" VALUES ")
        end = one.find(")", start) + 1
        head, row, tail = one[:start], one[start:end], one[end:]
        if start < len(" VALUES ") or head + row + ", " + row + tail != self._compile(2):
            return ()
        return head, row, tail

    def statement_sizes(self, rows: int) -> Iterator[int]:
        full, remainder = divmod(rows, self.rows_per_statement)
        yield from itertools.repeat(self.rows_per_statement, full)
        while remainder:
            size = largest_power_of_two(remainder)
            yield size
            remainder -= size

    def execute(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Insert `rows`; with `returning`, the returned rows sorted (by id, if first)."""
        returned: list[tuple[Any, ...]] = []
        start = 0
        for size in self.statement_sizes(len(rows)):
            params = list(itertools.chain.from_iterable(rows[start : start + size]))
            cursor = self.conn.execute_repeated(self.sql(size), params)
            try:
                if self.returning:
                    returned.extend(cursor.fetchall())
            finally:
                cursor.close()  # psycopg keeps the query and its parameters until then
            start += size
        returned.sort()
        return returned
