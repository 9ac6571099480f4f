"""The signed sender the tests call the bot with; it lives in bot.testing, shared with the demo and the benchmarks."""

from bot.testing.signing import SlackSender, sign

__all__ = ["SlackSender", "sign"]
