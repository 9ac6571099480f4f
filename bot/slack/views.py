"""Modals and the App Home: each view's IDs live next to its build() and parse()."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.catalog import Catalog
from bot.durations import format_duration
from bot.errors import UserError
from bot.slack.messages import (
    ACTION_APPROVE,
    ACTION_CANCEL,
    ACTION_DENY,
    ACTION_EXTEND,
    ACTION_REVOKE,
    button,
    escape,
    line,
)
from bot.store.models import AccessRequest
from bot.store.queries.requests import Page

View = dict[str, Any]
# App Home takes at most 100 blocks: three sections of HOME_ROWS rows (two blocks each), their headers
# and an "and N more" line each come to 96.
HOME_BLOCKS = 100
HOME_ROWS = 15
ENDED_ROWS = 5  # in one block, with its header: 98 blocks at most
REQUEST_VIEW = "accessbot_request"
DENY_VIEW = "accessbot_deny_reason"
EXTEND_VIEW = "accessbot_extend_view"


def _input(block_id: str, label: str, element: dict[str, Any], hint: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {**element, "action_id": "value"},
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def _text(multiline: bool = False, initial: str | None = None, max_length: int = 500) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline, "max_length": max_length}
    if initial:
        element["initial_value"] = initial
    return element


def _modal(callback_id: str, title: str, submit: str, blocks: list[dict[str, Any]], metadata: str = "") -> View:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def request_view(catalog: Catalog, names: list[str]) -> View:
    """The request form: only resources this person may request."""
    if not names:
        raise UserError("There is nothing in the catalog you may request; ask an admin.")
    options = [
        {
            "text": {"type": "plain_text", "text": name[:75]},
            "description": {"type": "plain_text", "text": (catalog.resources[name].description or name)[:75]},
            "value": name,
        }
        for name in names[:100]
    ]
    default = format_duration(catalog.defaults.default_duration)
    return _modal(
        REQUEST_VIEW,
        "Request AWS access",
        "Request",
        [
            *_warnings(catalog, names[:100]),
            _input("resource", "Resource", {"type": "static_select", "options": options}),
            _input("duration", "Duration", _text(initial=default, max_length=20), "e.g. 30m, 2h, 1h30m"),
            _optional(
                _input(
                    "start",
                    "Start (optional)",
                    _text(max_length=40),
                    "Leave empty to start on approval; or +30m, 14:00 (your time zone), 2026-12-01T09:00",
                )
            ),
            _input("reason", "Reason", _text(multiline=True), _ticket_hint(catalog, names)),
        ],
    )


def _warnings(catalog: Catalog, names: list[str]) -> list[dict[str, Any]]:
    """A section naming each offered resource's `warning`, above the choice, so it is read before choosing."""
    lines = [f":warning: *{escape(n)}*: {escape(w)}" for n in names if (w := catalog.resources[n].warning) is not None]
    text = "\n".join(lines)
    text = text if len(text) <= 3000 else text[:2999] + "…"  # Slack's limit for a section's text
    return [{"type": "section", "block_id": "warnings", "text": {"type": "mrkdwn", "text": text}}] if lines else []


def _optional(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "optional": True}


def _ticket_hint(catalog: Catalog, names: list[str]) -> str | None:
    """Which of the resources offered need a ticket reference in the reason, and in what form."""
    ticketed = [f"{n}: {catalog.resources[n].reason_pattern}" for n in names if catalog.resources[n].reason_pattern]
    if not ticketed:
        return None
    hint = "Include a ticket reference for " + "; ".join(ticketed)
    return hint if len(hint) <= 300 else hint[:299] + "…"  # Slack allows 2000; a hint stays a hint


def values(view: dict[str, Any]) -> dict[str, str]:
    """The submitted value of each input block, by block ID."""
    found: dict[str, str] = {}
    state = (view.get("state") or {}).get("values") or {}
    for block_id, actions in state.items():
        answer = (actions or {}).get("value") or {}
        if not isinstance(answer, dict):
            continue
        selected = answer.get("selected_option") or {}
        found[str(block_id)] = str(answer.get("value") or (selected.get("value") if selected else "") or "")
    return found


def deny_view(request_id: int, round: int) -> View:
    """The small form asking why a request is denied."""
    return _modal(
        DENY_VIEW,
        f"Deny request #{request_id}",
        "Deny",
        [_input("reason", "Why? (the requester sees this)", _text(multiline=True))],
        metadata=f"{request_id}:{round}",
    )


def extend_view(request_id: int, default: str) -> View:
    """The small form asking how much longer."""
    return _modal(
        EXTEND_VIEW,
        f"Extend request #{request_id}",
        "Extend",
        [_input("duration", "How much longer?", _text(initial=default, max_length=20), "e.g. 30m or 1h")],
        metadata=str(request_id),
    )


def home_view(
    mine: Sequence[AccessRequest],
    waiting: Sequence[AccessRequest] | Page,
    now: datetime,
    *,
    given_up: Mapping[int, str] | None = None,
    activity: Mapping[int, str] | None = None,
) -> View:
    """App Home: my active grants, my pending requests, and what waits for my approval.

    Pass `waiting` as a Page (Workflow.waiting_page) to say how many more wait than are shown, and `given_up`
    (Workflow.unposted) to say which requests' approval messages Slack refused for good.
    """
    given_up = given_up or {}
    active = [r for r in mine if r.status == "active"]
    pending = [r for r in mine if r.status in ("pending", "approved")]
    rows, total = (waiting.rows, waiting.total) if isinstance(waiting, Page) else (list(waiting), None)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": "Your access"}}]
    blocks += _rows(active, len(active), now, given_up, "No active grants.", lambda r: [
        button("Extend", ACTION_EXTEND, str(r.id)), button("Revoke", ACTION_REVOKE, str(r.id), "danger")])  # fmt: skip
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your pending requests"}})
    blocks += _rows(pending, len(pending), now, given_up, "Nothing pending.", lambda r: [
        button("Cancel", ACTION_CANCEL, str(r.id))])  # fmt: skip
    blocks += _ended(mine, now, activity or {})
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Waiting for your approval"}})
    blocks += _rows(rows, total, now, given_up, "Nothing waits for you.", lambda r: [
        button("Approve", ACTION_APPROVE, f"{r.id}:{r.extension_round}", "primary"),
        button("Deny", ACTION_DENY, f"{r.id}:{r.extension_round}", "danger")])  # fmt: skip
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS]}


def _rows(
    rows: Sequence[AccessRequest],
    total: int | None,
    now: datetime,
    given_up: Mapping[int, str],
    empty: str,
    buttons: Any,
) -> list[dict[str, Any]]:
    """Up to HOME_ROWS rows with their buttons, then how many more there are (`total`, when known)."""
    if not rows:
        return [_note(empty)]
    shown = rows[:HOME_ROWS]
    blocks: list[dict[str, Any]] = []
    for row in shown:
        text = f"{line(row, now, given_up.get(row.id or 0))}\n_{row.reason}_"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        blocks.append({"type": "actions", "elements": buttons(row)})
    if total is not None and total > len(shown):
        blocks.append(_note(f"…and {total - len(shown):,} more."))
    elif total is None and len(rows) > len(shown):
        blocks.append(_note("…and more."))
    return blocks


def _ended(mine: Sequence[AccessRequest], now: datetime, activity: Mapping[int, str]) -> list[dict[str, Any]]:
    """My latest ended grants, each with its activity report's totals (`N calls, M writes`): one block."""
    ended = [r for r in mine if r.status in ("expired", "revoked")][:ENDED_ROWS]
    if not ended:
        return []
    rows = [f"{line(r, now)} · {activity.get(r.id or 0, 'activity report to come')}" for r in ended]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Recently ended"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(rows)}},
    ]


def _note(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
