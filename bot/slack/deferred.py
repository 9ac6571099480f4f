"""Work a listener hands off after its ack, and where its answer, or the error it raised, is shown.

Slack waits 3 seconds for an ack. A listener acks after parsing and the checks that need nothing but
memory; identity, database, Slack and AWS work run here, on the background pool, and the answer reaches
the person through the command's response_url, or privately in the channel (a DM without one).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import Respond

from bot.background import Background
from bot.domain.lifecycle import InvalidTransition
from bot.errors import UserError
from bot.slack import messages
from bot.slack.notify import SlackNotifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Said:
    """An answer, and what to do once the person has it (announce the request, revoke, …)."""

    text: str | None
    then: Callable[[], object] | None = None


@dataclass(frozen=True)
class Reply:
    """Where a deferred answer goes: `respond` (a slash command's response_url) when set, else privately."""

    user: str
    channel: str | None
    respond: Respond | None = None


def explain(error: Exception) -> str:
    """What a person is told about an error: its own words for theirs, an error ID for ours."""
    if isinstance(error, UserError):
        return error.render(messages.mention)
    if isinstance(error, InvalidTransition):
        return str(error)
    error_id = secrets.token_hex(4)
    log.error("unhandled error %s: %r", error_id, error, exc_info=error)
    return f"Something went wrong on our side (error {error_id}); it is logged. Please try again."


class Deferred:
    """Runs a listener's work after the ack and shows its answer, or its error, to the person."""

    def __init__(self, background: Background, notifier: SlackNotifier) -> None:
        self._background = background
        self._notifier = notifier

    def run(self, reply: Reply, work: Callable[[], str | Said | None], about: int | None = None) -> None:
        """Run `work` soon; show what it returns (if anything) or the error it raises to `reply`."""
        self._background.submit(self._answer, about, reply, work)

    def _answer(self, _about: int | None, reply: Reply, work: Callable[[], str | Said | None]) -> None:
        try:
            answer = work()
        except Exception as exc:  # every error is answered; explain() logs the unexpected ones
            answer = explain(exc)
        said = answer if isinstance(answer, Said) else Said(answer)
        if said.text:
            self.send(reply, said.text)
        if said.then is not None:
            said.then()  # on this background thread: Background logs its failure with an error ID

    def send(self, reply: Reply, text: str) -> None:
        """Show `text` to the person only; through response_url when there is one."""
        if reply.respond is not None:
            try:
                answer = reply.respond(text=text, response_type="ephemeral")
                if answer.status_code == 200:
                    return
                log.warning("response_url answered %s; telling the person privately instead", answer.status_code)
            except (OSError, ValueError) as exc:
                log.warning("response_url failed (%s); telling the person privately instead", type(exc).__name__)
        self._notifier.private(reply.channel, reply.user, text)
