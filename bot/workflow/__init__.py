"""The use cases: submit, decide, activate, extend, end, and the sweep that finds what is owed."""

from bot.workflow.base import Alert, Directory, Notifier, Tuning
from bot.workflow.workflow import Workflow

__all__ = ["Alert", "Directory", "Notifier", "Tuning", "Workflow"]
