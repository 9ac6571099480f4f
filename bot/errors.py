"""Errors that carry a message meant for a person."""


class ConfigError(Exception):
    """A setting or catalog key is missing or invalid; the message names it."""


class UserError(Exception):
    """Something a Slack user asked for cannot be done; the message says why, privately.

    `field` names the modal input the message belongs to, when the request came from a form.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
