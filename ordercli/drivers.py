"""Keeping the drivers of the engines not in use out of the process.

`import peewee` tries to import every database driver it knows (psycopg2, psycopg,
pymysql, MySQLdb), and psycopg alone takes ~66 ms: more than the rest of a SQLite
command's start-up. The CLI knows the URL before anything imports Peewee, so it hides
the drivers that engine does not use (`sys.modules[name] = None` makes their import
fail at once, which Peewee takes as "not installed"); Peewee then imports only the
driver of the engine in use, itself, as usual. Nothing here imports Peewee.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from urllib.parse import urlsplit

ALL_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi", "pymysql", "MySQLdb")
# What each URL scheme needs (ordercli uses psycopg 3 on PostgreSQL: prefer_psycopg3).
NEEDED = {
    "sqlite": (),
    "postgresql": ("psycopg",),
    "postgres": ("psycopg",),
    "mysql": ("pymysql",),
}


def hide_unused_drivers(url: str) -> Callable[[], None]:
    """Hide the drivers `url`'s engine does not use until the returned undo is called.

    Does nothing once Peewee is imported (its choice is made), nor for a driver already
    imported by someone else."""
    if "peewee" in sys.modules:
        return lambda: None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    needed = NEEDED.get(scheme, ())
    hidden = [n for n in ALL_DRIVERS if n not in needed and n not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]

    def undo() -> None:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]

    return undo
