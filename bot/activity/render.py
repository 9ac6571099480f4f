"""Every sentence of the activity report: Slack text from a stored report body."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.activity.summary import WRITES_LISTED, parse_time
from bot.durations import format_duration

CALLS_SHOWN = 15
MANAGEMENT_ONLY = (
    "Management events only: data events (such as S3 object reads or Lambda invocations) are not in "
    "CloudTrail's event history."
)


def report_text(
    request_id: int,
    body: Mapping[str, Any],
    *,
    asked: timedelta,
    started: datetime | None,
    ended: datetime | None,
    so_far: bool = False,
) -> str:
    """The report as one Slack message (mrkdwn)."""
    head = f"*Activity of #{request_id}*" + (" (so far)" if so_far else "")
    lines = [head + ": " + totals_line(body)]
    if body["calls"]:
        lines.append(f"First call {_clock(body['first'])}, last call {_clock(body['last'])}.")
    lines.append(right_sizing(body, asked=asked, started=started, ended=ended))
    if body["by_call"]:
        lines.append("*Calls:* " + ", ".join(f"{s}:{n} x{k}" for s, n, k in body["by_call"][:CALLS_SHOWN]))
        if len(body["by_call"]) > CALLS_SHOWN:
            lines[-1] += f" and {len(body['by_call']) - CALLS_SHOWN} more kinds"
    if body["write_calls"]:
        lines.append("*Writes:*")
        lines += [f"• {_clock(c['at'])} {c['service']}:{c['name']}" + _error(c) for c in body["write_calls"]]
        if body["writes"] > WRITES_LISTED:
            lines.append(f"…and {body['writes'] - WRITES_LISTED} more")
    if body["denied_calls"]:
        lines.append("*AccessDenied:*")
        lines += [f"• {_clock(c['at'])} {c['service']}:{c['name']}" for c in body["denied_calls"]]
        if body["denied"] > len(body["denied_calls"]):
            lines.append(f"…and {body['denied'] - len(body['denied_calls'])} more")
    lines.append(f"_Covers {body['coverage']}. {MANAGEMENT_ONLY}_")
    if body["partial"]:
        lines.append(f"_Partial: stopped after {body['pages']} page(s) of CloudTrail; there is more._")
    for note in body["not_read"]:
        lines.append(f"_Not read: {note}._")
    return "\n".join(lines)


def totals_line(body: Mapping[str, Any]) -> str:
    """`12 calls, 3 writes, 1 AccessDenied`, or `no calls`."""
    if not body["calls"]:
        return "no calls" + (" (partial)" if body["partial"] else "")
    text = f"{body['calls']:,} calls, {body['writes']:,} writes"
    if body["denied"]:
        text += f", {body['denied']:,} AccessDenied"
    return text + (" (partial)" if body["partial"] else "")


def right_sizing(body: Mapping[str, Any], *, asked: timedelta, started: datetime | None, ended: datetime | None) -> str:
    """`Asked for 4h, last call 12m in (of 4h held).`: how much of the time asked for was needed."""
    text = f"Asked for {format_duration(asked)}"
    if started is None:
        return text + "."
    if not body["last"]:
        return text + ", never used."
    offset = max(timedelta(0), parse_time(body["last"]) - started)
    held = f" (of {format_duration(_whole(ended - started))} held)" if ended is not None else ""
    return f"{text}, last call {format_duration(_whole(offset))} in{held}."


def home_note(calls: int | None, writes: int | None) -> str | None:
    """`N calls, M writes` beside an ended grant in App Home, once its report is made."""
    if calls is None:
        return None
    return "no calls" if not calls else f"{calls:,} calls, {writes or 0:,} writes"


def _whole(value: timedelta) -> timedelta:
    seconds = max(0, int(value.total_seconds()))
    return timedelta(seconds=seconds - seconds % 60 if seconds >= 60 else seconds)


def _clock(iso: str) -> str:
    return parse_time(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error(call: Mapping[str, Any]) -> str:
    return f" ({call['error']})" if call.get("error") else ""
