"""Domain errors: the CLI turns each into one `Error:` line and exit code 1."""


class OrderCliError(Exception):
    """Base of every expected, user-actionable failure."""


class ConfigError(OrderCliError):
    """The database URL or another setting cannot be used."""


class DatabaseUnavailable(OrderCliError):
    """The database cannot be reached, opened or written."""


class DatabaseFailure(OrderCliError):
    """The database refused a statement (constraint, lock, disk full, ...)."""


class NotFound(OrderCliError):
    """One or more ids do not exist."""


class Refused(OrderCliError):
    """The request breaks a business rule, e.g. cancelling a shipped order."""


class PendingMigrations(OrderCliError):
    """A server's schema is older than this ordercli: only `ordercli migrate` upgrades it."""


class MigrationBlocked(OrderCliError):
    """A migration found rows it will not convert by guessing; nothing was changed."""
