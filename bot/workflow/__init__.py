"""The use cases: submit, decide, activate, extend, end, and the sweep that finds what is owed."""

from bot.workflow.base import Directory, Notifier, Tuning
from bot.workflow.sweep import Workflow

__all__ = ["Directory", "Notifier", "Tuning", "Workflow"]
