"""The fake Slack Web API and the request signer shared by the demo, the tests and the benchmarks.

The bot itself never imports this package: it talks to whatever SLACK_API_URL points at.
"""
