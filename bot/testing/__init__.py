"""What the demo, the tests and the benchmarks share, shipped with the package.

The fake Slack Web API and Socket Mode endpoint, the request signer, and the in-process tier: fakes for the
workflow's ports (granter, notifier, directory, identity), a clock the test moves, and `InProcess`, the real
workflow on SQLite wired to them. The bot itself never imports this package.
"""
