"""Reading a `--db` URL: its scheme, database, connection keywords and password.

Kept apart from backends.py so that anything needing only the URL (tests, benchmarks,
error redaction) does not import Peewee, which imports every installed driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ordercli.errors import ConfigError

# Every scheme ordercli opens, with the example its errors show (backends.SCHEMES maps
# the same names to engines).
EXAMPLES = {
    "sqlite": "sqlite:///orders.db",
    "postgresql": "postgresql://user:password@host:5432/dbname",
    "postgres": "postgres://user:password@host:5432/dbname",
    "mysql": "mysql://user:password@host:3306/dbname",
}


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed `--db` URL. `secrets` holds every spelling of the password, for redaction."""

    scheme: str
    database: str
    connect_params: dict[str, Any]
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            # Python's message quotes the text it took for a port, which may be part of
            # the password (an unencoded "#", "?" or "/" ends the password early).
            raise ConfigError(
                "invalid database URL: the port is not a number from 0 to 65535 "
                "(percent-encode special characters in the password, e.g. # as %23)"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in EXAMPLES:
            known = ", ".join(f"{name}://" for name in EXAMPLES)
            shown = f"{scheme}://" if scheme else "(none)"
            raise ConfigError(f"unsupported database URL scheme {shown}; use one of {known}")
        secrets = _spellings(parts.password or "")
        params: dict[str, Any] = {}
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        if parts.hostname:
            params["host"] = parts.hostname
        if port:
            params["port"] = port
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            params[key] = _query_value(value)
        if scheme == "sqlite":
            if parts.netloc:
                # sqlite://orders.db reads "orders.db" as a host: name it (not the
                # user or password, which may be secret).
                host = f" (here {parts.hostname!r})" if parts.hostname else ""
                raise ConfigError(
                    f"SQLite URLs have no host part{host}: three slashes before a relative "
                    "path, four before an absolute one: sqlite:///relative/path.db "
                    "or sqlite:////absolute/path.db"
                )
            if params:
                raise ConfigError(
                    "SQLite URLs take no options or query parameters: "
                    "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
                )
            database = unquote(parts.path[1:])
        else:
            database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ConfigError(f"the {scheme}:// URL names no database, e.g. {EXAMPLES[scheme]}")
        return cls(scheme, database, params, secrets)


def _query_value(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if value.isdigit():
        return int(value)
    return value


def password_spellings(url: str) -> tuple[str, ...]:
    """The password in `url`, as written and decoded, for `redact`: read even from a URL
    that does not parse, since the message about it may quote the password."""
    try:
        password = urlsplit(url).password or ""
    except ValueError:
        password = url.partition("@")[0].rpartition(":")[2] if "@" in url else ""
    return _spellings(password)


def _spellings(password: str) -> tuple[str, ...]:
    return tuple(s for s in {password, unquote(password)} if s)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every spelling of the password replaced by `***`; the longest first,
    since replacing a shorter spelling inside a longer one would leave the rest of it."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
