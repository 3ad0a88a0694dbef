"""The console's app in-process: Starlette's TestClient speaks ASGI to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_helpers import console_settings
from fastapi.testclient import TestClient

from eventpipe.api.tokens import Tokens
from eventpipe.settings import Settings
from services.console.app import create_app


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Settings with no broker: enough for everything that does not send to Kafka."""
    settings = console_settings(tmp_path / "data")
    settings.checkpoint_dir.mkdir(parents=True)
    return settings


@pytest.fixture
def client(offline: Settings) -> TestClient:
    return TestClient(create_app(offline, Tokens.load(offline)))
