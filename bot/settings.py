"""Process settings, read from `CHANCENTER_*` environment variables.

Per-space settings (a space's own Slack workspace or bot) live in the database;
these only configure the process and the default space.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHANCENTER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./chancenter.db"
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8080")
    secret_key: SecretStr | None = None
    data_dir: Path = Path("./data")
    log_level: str = "INFO"

    telegram_api_base: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    graph_api_base: AnyHttpUrl = AnyHttpUrl("https://graph.facebook.com/v21.0")
    slack_api_base: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")
    # The Bot Framework's signing keys (inbound tokens) and the Microsoft identity platform
    # that issues the bot's outbound tokens (a prefix: the tenant follows it).
    botframework_openid_url: AnyHttpUrl = AnyHttpUrl(
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    botframework_login_url: AnyHttpUrl = AnyHttpUrl("https://login.microsoftonline.com/")
    dialogflow_endpoint: str = "dialogflow.googleapis.com"
    dialogflow_project: str | None = None
    dialogflow_credentials: Path | None = None
    dialogflow_timeout: float = Field(5.0, gt=0, le=60)
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_inbox_channel: str | None = None
    # The Slack app's OAuth credentials: spaces install the desk with "Add to Slack".
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None

    # Outgoing webhooks may reach loopback and private addresses (tests, receivers on
    # your own network); link-local and cloud metadata addresses are always refused.
    webhooks_allow_private: bool = False

    # The built-in bot's Dialogflow ES agent export; unset: the bundled sample agent.
    agent_path: Path | None = None
    # Largest webhook body or web-chat upload we accept, in bytes.
    max_body_bytes: int = Field(1_000_000, gt=0)
    max_upload_bytes: int = Field(10_000_000, gt=0)
    # Seconds a client has to send a request's headers, and again its body: a slow
    # sender (a slowloris) is cut off instead of holding a connection for ever.
    read_timeout: float = Field(10.0, gt=0, le=300)
    # How many conversations the in-process worker handles at once.
    worker_concurrency: int = Field(16, ge=1)
    # The reverse proxies in front of the hub (addresses or networks, comma-separated):
    # behind them, a client's address is read from X-Forwarded-For (the dashboard's
    # sign-in limit counts tries per address).
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    # serve also runs the work queue consumer and the sender: by default only without
    # Redis (the embedded mode); with Redis, `chancenter worker` processes do the work.
    work: bool | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )

    @property
    def works(self) -> bool:
        return self.work if self.work is not None else self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_key(self) -> bytes:
        """The secret key, generated into the data dir on first use when not set."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable `ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "CHANCENTER_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
