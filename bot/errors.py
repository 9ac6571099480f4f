"""Errors that carry a message meant for a person."""

from collections.abc import Callable, Sequence


class ConfigError(Exception):
    """A setting or catalog key is missing or invalid; the message names it."""


class UserError(Exception):
    """Something a Slack user asked for cannot be done; the message says why, privately.

    `field` names the modal input the message belongs to, when the request came from a form. `people` are
    user IDs the message names where it says `{people}`: the Slack layer renders them as mentions, and
    `str()` as plain IDs, so the workflow writes no Slack markup.
    """

    def __init__(self, message: str, *, field: str | None = None, people: Sequence[str] = ()) -> None:
        self.template = message
        self.people = tuple(people)
        super().__init__(self.render(str))
        self.field = field

    def render(self, person: Callable[[str], str]) -> str:
        """The message with each of `people` written by `person` (a Slack mention, say)."""
        return self.template.replace("{people}", ", ".join(person(p) for p in self.people))
