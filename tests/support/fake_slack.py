"""The fake Slack Web API the tests read from; it lives in bot.testing, shared with the demo and the benchmarks."""

from bot.testing.fake_slack import Call, FakeSlack, start_fake_slack

__all__ = ["Call", "FakeSlack", "start_fake_slack"]
