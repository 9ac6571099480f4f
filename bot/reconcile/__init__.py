"""`accessbot reconcile`: compare the database with AWS, report drift, repair it with --fix.

snapshot reads both sides (the database before and after AWS is listed), drift compares them without
I/O, repair fixes what was found under the workflow's locks, report words it; command is the CLI.
"""

from bot.reconcile.command import command
from bot.reconcile.reconciler import RUN_ACTION, Alerter, Reconciler
from bot.reconcile.report import MAX_ALERT_LINES, Drift, Fix, Problem, Report

__all__ = ["MAX_ALERT_LINES", "RUN_ACTION", "Alerter", "Drift", "Fix", "Problem", "Reconciler", "Report", "command"]
