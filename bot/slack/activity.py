"""`/access activity <id>`: the grant's activity report, for those who may read it."""

from __future__ import annotations

from collections.abc import Sequence

from bot.activity import owed, render
from bot.activity.lookup import Unavailable
from bot.activity.reporter import ActivityReporter
from bot.domain.policy_activity import may_read_activity
from bot.errors import UserError
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow import Workflow


def activity_answer(workflow: Workflow, activity: ActivityReporter | None, user: str, request_id: int) -> str:
    """The report's text; a UserError (answered privately) for anyone but the requester, approvers and auditors."""
    if activity is None:
        raise UserError("Activity reports are not available in this process.")
    with session_scope(workflow.engine) as session:
        request = session.get(AccessRequest, request_id)
    catalog = workflow.catalog
    approvers = (
        catalog.approvers_of(request.resource) if request and catalog.resource(request.resource) else frozenset()
    )
    directory = workflow.ctx.directory
    if request is None or not may_read_activity(
        user,
        requester=request.requester_id,
        approvers=directory.expand(approvers),
        auditors=directory.expand(frozenset(catalog.auditors)),
    ):
        # The same words whether the request exists or not: nothing is told to someone who may not read it.
        raise UserError(
            f"Only the requester of #{request_id}, its resource's approvers and the catalog's auditors can read its "
            "activity."
        )
    try:
        return activity.show(request).text
    except LookupError as exc:
        raise UserError(str(exc)) from None
    except Unavailable as exc:
        raise UserError(f"CloudTrail cannot be read right now ({exc}); try again in a few minutes.") from None


def home_notes(workflow: Workflow, rows: Sequence[AccessRequest]) -> dict[int, str]:
    """`N calls, M writes` for each of these requests whose activity report is made, by request ID."""
    ended = [r.id for r in rows if r.id is not None and r.ended_at is not None]
    with session_scope(workflow.engine) as session:
        made = owed.reports_of(session, ended)
    notes = {i: render.home_note(r.calls, r.writes) for i, r in made.items()}
    return {i: note for i, note in notes.items() if note is not None}
