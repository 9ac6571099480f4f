"""What of an owed Slack post is drawn from its request when it is sent."""

from __future__ import annotations

from enum import StrEnum


class Render(StrEnum):
    """A post drawn from its request when sent; every one is in the line of the approval message."""

    APPROVAL = "approval"  # the approval message itself, with the request's current state and buttons
    UPDATE = "update"  # the approval message redrawn in place
    THREAD = "thread"  # a reply under the approval message (in its channel, if the message was given up)
