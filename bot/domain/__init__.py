"""Pure decisions: no Slack, AWS or database here."""
