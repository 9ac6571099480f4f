"""Is the requester on call right now? Pure: the answers are fetched elsewhere, the decision is made here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum


class OnCallReason(StrEnum):
    """Why on-call approved a request, or did not."""

    ON_CALL = "on_call"
    NOT_ON_CALL = "not_on_call"
    FILED_FOR_SOMEONE = "filed_for_someone"  # never: nobody puts access on a teammate because they are on call
    NO_EMAIL = "no_email"  # the requester's Slack profile shows no email to match with
    NO_PAGERDUTY_USER = "no_pagerduty_user"
    AMBIGUOUS_USER = "ambiguous_user"  # more than one PagerDuty user has that email
    UNAVAILABLE = "unavailable"  # an error, a timeout, an answer that could not be read
    NOT_CONFIGURED = "not_configured"  # on_call in the catalog, no PagerDuty token in the environment


@dataclass(frozen=True)
class Rota:
    """One place someone can be on call, as read: its name, and who is on call now (None: unreadable)."""

    name: str
    on_call: frozenset[str] | None
    error: str = ""


@dataclass(frozen=True)
class OnCallDecision:
    """The answer: approve at once only when `approved`; `note` says why, as people read it."""

    reason: OnCallReason
    note: str

    @property
    def approved(self) -> bool:
        """Whether the requester is on call, so the request needs no person."""
        return self.reason is OnCallReason.ON_CALL

    @property
    def unchecked(self) -> bool:
        """Whether on-call could not be checked (the approval message says why)."""
        return self.reason not in (OnCallReason.ON_CALL, OnCallReason.NOT_ON_CALL, OnCallReason.FILED_FOR_SOMEONE)


FILED_FOR_SOMEONE = OnCallDecision(OnCallReason.FILED_FOR_SOMEONE, "filed for someone else: on-call does not apply")


def match_user(email: str, users: Sequence[tuple[str, str]]) -> str | OnCallDecision:
    """The one PagerDuty user ID whose email is exactly `email` (case aside), or the decision that none is.

    `users` are (id, email) pairs from a search, which matches more than the exact email (a prefix, a name).
    """
    wanted = email.strip().lower()
    if not wanted:
        return OnCallDecision(OnCallReason.NO_EMAIL, "on-call could not be checked: no email in the Slack profile")
    ids = sorted({user_id for user_id, found in users if found.strip().lower() == wanted})
    if not ids:
        note = f"on-call could not be checked: no PagerDuty user has the email {wanted}"
        return OnCallDecision(OnCallReason.NO_PAGERDUTY_USER, note)
    if len(ids) > 1:
        return OnCallDecision(
            OnCallReason.AMBIGUOUS_USER, f"on-call could not be checked: {len(ids)} PagerDuty users have {wanted}"
        )
    return ids[0]


def decide(who: str, rotas: Collection[Rota]) -> OnCallDecision:
    """On call in any rota that answered: approved, naming it. Else, if any could not be read: unchecked."""
    for rota in sorted(rotas, key=lambda r: r.name):
        if rota.on_call is not None and who in rota.on_call:
            return OnCallDecision(OnCallReason.ON_CALL, f"on call for {rota.name}")
    unread = sorted((rota for rota in rotas if rota.on_call is None), key=lambda r: r.name)
    if unread:
        why = "; ".join(f"{rota.name}: {rota.error or 'no answer'}" for rota in unread)
        return OnCallDecision(OnCallReason.UNAVAILABLE, f"on-call could not be checked ({why})")
    names = ", ".join(sorted(rota.name for rota in rotas))
    return OnCallDecision(OnCallReason.NOT_ON_CALL, f"not on call for {names}")


def combine(decisions: Sequence[OnCallDecision]) -> OnCallDecision:
    """Several lookups (PagerDuty, a Slack user group) as one: approved by any; else unchecked if any was."""
    for decision in decisions:
        if decision.approved:
            return decision
    unchecked = [d for d in decisions if d.unchecked]
    if unchecked:
        return unchecked[0]
    return OnCallDecision(OnCallReason.NOT_ON_CALL, "; ".join(d.note for d in decisions))
