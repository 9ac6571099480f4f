"""What a grant was used for: CloudTrail's event history read, attributed, summed up and reported.

lookup (paced LookupEvents), attribution (which events are the person's, per kind), summary (counts,
writes, AccessDenied, right-sizing), render (Slack text, JSON), owed (reports owed after every end), reporter
(claims owed reports and posts them), pacer (LookupEvents' rate across replicas), sizing (right-sizing).
The CLI is bot/ops_activity.py.
"""
