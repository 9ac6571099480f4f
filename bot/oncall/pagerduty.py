"""A small PagerDuty REST API v2 client: who a user is, who is on call now; answers cached briefly.

The calls, per PagerDuty's API reference (https://developer.pagerduty.com/api-reference/):
- "List users": `GET /users?query=<text>` filters by name or email (not an exact match: the caller
  compares emails); answer `{"users": [{"id", "email", ...}], "more": ...}`.
- "List users on call" of a schedule: `GET /schedules/{id}/users?since=&until=`, the users on call in
  that window; answer `{"users": [...]}`. (`GET /oncalls` lists a schedule only when an escalation policy
  reaches it.)
- "List all of the on-calls": `GET /oncalls?escalation_policy_ids[]=<id>&since=&until=`, one entry per
  (user, policy, level); answer `{"oncalls": [{"user": {"id"}, "escalation_level": 1, ...}]}`.
- "Get a schedule" / "Get an escalation policy": `GET /schedules/{id}`, `GET /escalation_policies/{id}`
  (`{"schedule": {"name"}}`, `{"escalation_policy": {"name"}}`), 404 when there is none.
Every call carries `Authorization: Token token=<token>` and `Accept: application/vnd.pagerduty+json;version=2`
("API Authentication" and "Versioning" in the same reference).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

TIMEOUT_SECONDS = 3.0  # a request waits for on-call at most about this long per call, then goes to people
CACHE_SECONDS = 60.0  # who is on call changes at hand-offs; a minute late at worst
NAME_SECONDS = 3600.0  # a schedule's or policy's name, for the notes people read: rarely changes
ACCEPT = "application/vnd.pagerduty+json;version=2"


class PagerDutyError(Exception):
    """PagerDuty did not give a usable answer (an HTTP error, a timeout, a body that is not what it documents)."""


class PagerDuty:
    """Reads users, schedules and escalation policies; each answer is kept CACHE_SECONDS."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._ttl = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any]] = {}  # path and query -> (read at, answer)
        self._lock = threading.Lock()

    def users_by_email(self, email: str) -> list[tuple[str, str]]:
        """(id, email) of the users a search for `email` finds (the caller keeps the exact match)."""
        body = self._get("/users", [("query", email), ("limit", "100")])
        return [(str(u["id"]), str(u.get("email", ""))) for u in _list(body, "users")]

    def schedule_on_call(self, schedule_id: str) -> frozenset[str]:
        """IDs of the users on call in the schedule right now."""
        since, until = _now_window()
        body = self._get(f"/schedules/{_quote(schedule_id)}/users", [("since", since), ("until", until)])
        return frozenset(str(u["id"]) for u in _list(body, "users"))

    def policy_on_call(self, policy_id: str, level: int) -> frozenset[str]:
        """IDs of the users on call right now at `level` of the escalation policy."""
        since, until = _now_window()
        query = [("escalation_policy_ids[]", policy_id), ("since", since), ("until", until), ("limit", "100")]
        entries = _list(self._get("/oncalls", query), "oncalls")
        return frozenset(str(e["user"]["id"]) for e in entries if int(e.get("escalation_level", 0)) == level)

    def forget(self, *, names: bool = False) -> None:
        """Drop the cached answers about users and on-call (and names too, when `names`): asked again next."""
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if _is_name(k) and not names}

    def check_token(self) -> None:
        """Raise PagerDutyError unless PagerDuty accepts the token (one user listed)."""
        _list(self._get("/users", [("limit", "1")]), "users")

    def schedule_name(self, schedule_id: str) -> str:
        """The schedule's name; PagerDutyError when there is no such schedule."""
        return str(_object(self._get(f"/schedules/{_quote(schedule_id)}", []), "schedule")["name"])

    def policy_name(self, policy_id: str) -> str:
        """The escalation policy's name; PagerDutyError when there is none."""
        return str(_object(self._get(f"/escalation_policies/{_quote(policy_id)}", []), "escalation_policy")["name"])

    def _get(self, path: str, query: list[tuple[str, str]]) -> Any:
        key = path + "?" + urllib.parse.urlencode(sorted(q for q in query if q[0] not in ("since", "until")))
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < (NAME_SECONDS if _is_name(key) else self._ttl):
            return hit[1]
        url = self._base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Token token={self._token}", "Accept": ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise PagerDutyError(f"PagerDuty answered HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:  # refused, timed out, not JSON
            raise PagerDutyError(f"PagerDuty did not answer ({type(exc).__name__})") from exc
        with self._lock:
            self._cache[key] = (now, body)
        return body


def _is_name(key: str) -> bool:
    """Whether a cache key is a schedule or policy itself (its name), not a list of users."""
    parts = key.split("?", 1)[0].strip("/").split("/")
    return len(parts) == 2 and parts[0] in ("schedules", "escalation_policies")


def _now_window() -> tuple[str, str]:
    # A one-second window at now: who is on call at this moment (PagerDuty wants until after since).
    now = datetime.now(UTC).replace(microsecond=0)
    return now.isoformat(), (now + timedelta(seconds=1)).isoformat()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise PagerDutyError(f"PagerDuty's answer has no {key} list")
    try:
        return [dict(item) for item in body[key]]
    except (TypeError, ValueError) as exc:
        raise PagerDutyError(f"PagerDuty's {key} are not objects") from exc


def _object(body: Any, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict) or "name" not in body[key]:
        raise PagerDutyError(f"PagerDuty's answer has no {key}")
    return dict(body[key])
