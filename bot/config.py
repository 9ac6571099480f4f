"""Settings from the environment (or a `.env` file), built lazily by get_settings()."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from dotenv import load_dotenv
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.durations import parse_duration
from bot.errors import ConfigError

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class Settings(BaseSettings):
    """Everything accessbot reads from its environment; names match SPEC.md exactly."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    slack_bot_token: str | None = Field(default=None, pattern=r"^xoxb-\S+$")
    slack_signing_secret: str | None = Field(default=None, min_length=1)
    slack_app_token: str | None = Field(default=None, pattern=r"^xapp-\S+$")
    slack_api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://\S+$")
    database_url: str = Field(default="sqlite:///./accessbot.db", min_length=1)
    accessbot_catalog: Path = Path("./catalog.yaml")
    accessbot_scheduler: Literal["on", "off"] = "on"
    accessbot_sweep_seconds: float = Field(default=15.0, gt=0, le=3600)
    # How long a replica's claim on due work lasts unless renewed; a live replica renews the claims it works on
    # every third of it, so after a crash another replica (or the restarted one) takes the work over this soon.
    accessbot_lease_seconds: float = Field(default=8.0, ge=1, le=3600)
    # How often the scheduler compares the database with AWS and alerts on drift; 0 turns it off.
    accessbot_reconcile_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    # How long AWS may take to apply a policy change everywhere (IAM User Guide, "Changes that I make are not
    # always immediately visible"): a session deny's cutoff is the end plus this, and it is lifted this late.
    accessbot_iam_propagation_seconds: float = Field(default=300.0, ge=0, le=86400)
    port: int = Field(default=3000, ge=0, le=65535)
    # On-call approval (catalog `auto_approve: {on_call: {pagerduty: ...}}`): a REST API token, and where the API is.
    accessbot_pagerduty_token: str | None = Field(default=None, min_length=1, repr=False)
    accessbot_pagerduty_url: str = Field(default="https://api.pagerduty.com", pattern=r"^https?://\S+$")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Activity reports (bot/activity): the wait for CloudTrail's delivery, the Regions read, the page bound.
    accessbot_activity_delay: timedelta = timedelta(minutes=15)
    accessbot_activity_regions: str | None = Field(default=None, pattern=r"^\s*[a-z0-9-]+(\s*,\s*[a-z0-9-]+)*\s*$")
    accessbot_activity_max_pages: int = Field(default=250, ge=1, le=10000)

    @field_validator("accessbot_activity_delay", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def activity_regions(self, own: str) -> tuple[str, ...]:
        """The Regions whose CloudTrail event history activity reports read (default: own and us-east-1)."""
        if self.accessbot_activity_regions:
            return tuple(dict.fromkeys(r.strip() for r in self.accessbot_activity_regions.split(",")))
        # IAM's events are in us-east-1 (CloudTrail User Guide, "Global service events").
        return tuple(dict.fromkeys((own, "us-east-1")))

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("accessbot_scheduler", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def scheduler_enabled(self) -> bool:
        """Whether this process runs the expiry scheduler."""
        return self.accessbot_scheduler == "on"

    def secret_values(self) -> tuple[str, ...]:
        """The values logs must never show (the formatter redacts them wherever they appear)."""
        return tuple(v for v in (self.slack_bot_token, self.slack_signing_secret, self.slack_app_token) if v)

    @property
    def log_level_number(self) -> int:
        """The numeric logging level."""
        return int(getattr(logging, self.log_level))

    def require_slack(self, *, http: bool) -> None:
        """Raise ConfigError naming the first Slack setting this mode cannot run without."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN: missing (the bot token, xoxb-...)")
        if http and not self.slack_app_token and not self.slack_signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET: missing (needed to verify requests from Slack over HTTP)")


def load_settings(env_file: str | None = ".env") -> Settings:
    """Build Settings, turning a validation failure into a one-line ConfigError."""
    if env_file and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(f"{name}: {_plain(first['msg'])}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return load_settings()


def _plain(message: str) -> str:
    if message.startswith("String should match pattern"):
        return "invalid value (" + message.lower() + ")"
    return message
