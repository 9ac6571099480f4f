"""`accessbot demo`: the real app, offline, against a stand-in for Slack and an in-process moto."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

EXIT_MISSING = 2
INSTALL_HINT = "accessbot demo needs moto: pip install 'accessbot[demo]' (or, in a checkout, pip install -e '.[demo]')"


def demo(settings: Settings) -> int:
    """Play the demo story; exit 0 when everything happened as told, 1 when not, 2 without moto."""
    try:
        import moto.server  # noqa: F401  (moto[server] brings the HTTP server the demo runs)
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return EXIT_MISSING
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace", line_buffering=True)
    if settings.log_level_number > logging.DEBUG:
        # The story is the output; the bot's own INFO lines would bury it.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request

    from bot.demo.story import DemoFailed, play

    try:
        play()
    except DemoFailed as exc:
        print(f"accessbot demo: the story went wrong: {exc}", file=sys.stderr)
        return 1
    return 0
