"""When to try a refused Slack post again: pure, so the schedule after an outage can be tested without waiting.

The numbers (documented in docs/architecture.md, "The Slack outbox"):
- 429: Slack asked for `Retry-After` seconds, for that method only (its rate limits are per method,
  https://api.slack.com/apis/rate-limits): wait exactly that long, not a growing backoff with it as a floor.
- anything else (5xx, a timeout, a refused connection): 2 s, 4 s, 8 s ... with jitter in [50 %, 100 %] of
  that, and never more than the cap, jitter included. The cap is 8 s while the post is under a minute old
  (so a post owed through an outage of up to a minute is tried at most 8 s after Slack answers again, sent
  within 10 s once the pump's 1 s poll is counted), then an eighth of the post's age (a Slack that stays
  down is asked about each owed post at most about 8 times over its whole outage ... every 75 s after ten
  minutes), up to the ceiling.
"""

from __future__ import annotations

from datetime import timedelta

SHORT_CAP = timedelta(seconds=8)
AGE_FRACTION = 8  # beyond the short cap, a post waits at most 1/AGE_FRACTION of its age


def retry_after_delay(retry_after: float) -> timedelta:
    """What Slack asked for on a 429: exactly that (at least a second, as Slack never asks for less)."""
    return timedelta(seconds=max(1.0, retry_after))


def outage_delay(attempts: int, age: timedelta, *, base: timedelta, ceiling: timedelta, jitter: float) -> timedelta:
    """The wait after `attempts` failures of a post `age` old; `jitter` in [0, 1] (random in production)."""
    exponent = min(max(0, attempts - 1), 32)
    grown = base.total_seconds() * (2.0**exponent)
    cap = min(max(SHORT_CAP, age / AGE_FRACTION), ceiling).total_seconds()
    spread = 0.5 + 0.5 * min(max(jitter, 0.0), 1.0)  # replicas that failed together do not retry together
    return timedelta(seconds=min(grown * spread, cap))
