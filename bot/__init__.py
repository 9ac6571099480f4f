"""accessbot: time-limited AWS access through Slack, with an approval in between."""

__version__ = "0.1.0"
