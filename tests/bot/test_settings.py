from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import Settings, load_settings


def test_environment_variables_use_the_chancenter_prefix(monkeypatch) -> None:
    monkeypatch.setenv("CHANCENTER_PORT", "9000")
    monkeypatch.setenv("CHANCENTER_REDIS_URL", "redis://localhost:6379/0")
    settings = load_settings()
    assert settings.port == 9000 and settings.redis_url == "redis://localhost:6379/0"
    assert settings.database_url == "sqlite+aiosqlite:///./chancenter.db"
    assert str(settings.telegram_api_base) == "https://api.telegram.org/"


def test_bad_values_name_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("CHANCENTER_PUBLIC_URL", "not a url")
    with pytest.raises(ConfigError, match="CHANCENTER_PUBLIC_URL"):
        load_settings()


def test_secret_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = settings.signing_key()
    assert len(key) > 40 and settings.signing_key() == key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert Settings(data_dir=tmp_path, secret_key="given").signing_key() == b"given"
