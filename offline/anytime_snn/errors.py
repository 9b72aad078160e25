"""Project exceptions. Each subclasses a built-in so callers can catch the usual type."""


class BundleError(ValueError):
    """A model bundle is malformed, inconsistent or unsafe. The message names the file and field."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        self.path = path
        self.field = field
        where = ", ".join(p for p in (f"file {path}" if path else "", f"field {field!r}" if field else "") if p)
        super().__init__(f"{message} ({where})" if where else message)


class ConfigError(ValueError):
    """A user-supplied parameter or configuration value is invalid."""


class DataError(RuntimeError):
    """A data set is missing or corrupt. The message says how to provide it."""
