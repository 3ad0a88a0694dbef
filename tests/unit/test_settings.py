from __future__ import annotations

from pathlib import Path

import pytest

from eventpipe.settings import Settings, load_settings
from eventpipe.stack import settings_env


def test_secrets_come_from_files_and_never_show(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "EVENTPIPE_POSTGRES_DSN").write_text("postgresql://u:hunter2@db/x")
    (tmp_path / "eventpipe_sasl_password").write_text("s3cret")
    monkeypatch.setenv("EVENTPIPE_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.postgres_dsn is not None
    assert settings.postgres_dsn.get_secret_value() == "postgresql://u:hunter2@db/x"
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "s3cret"
    assert "hunter2" not in repr(settings) and "s3cret" not in str(settings)
    # The local stack hands them to its services through their environment only.
    assert settings_env(settings)["EVENTPIPE_SASL_PASSWORD"] == "s3cret"


def test_a_missing_secrets_dir_and_bad_values_are_clear(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("EVENTPIPE_SECRETS_DIR", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="is not a folder"):
        load_settings()
    monkeypatch.delenv("EVENTPIPE_SECRETS_DIR")
    monkeypatch.setenv("EVENTPIPE_TOPIC_PREFIX", "bad prefix!")
    with pytest.raises(ValueError, match="topic_prefix"):
        load_settings()


def test_each_local_service_gets_only_the_secrets_it_uses() -> None:
    from pydantic import SecretStr

    from eventpipe.settings import Settings

    settings = Settings(postgres_dsn=SecretStr("postgresql://u:pw@db/x"),
                        llm_api_key=SecretStr("sk-llm"), sasl_password=SecretStr("kafka-pw"))
    ner, sink, llm = (settings_env(settings, s) for s in ("ner", "sink", "llm"))
    assert "EVENTPIPE_POSTGRES_DSN" not in ner and "EVENTPIPE_LLM_API_KEY" not in ner
    assert sink["EVENTPIPE_POSTGRES_DSN"] == "postgresql://u:pw@db/x"
    assert "EVENTPIPE_LLM_API_KEY" not in sink
    assert llm["EVENTPIPE_LLM_API_KEY"] == "sk-llm" and "EVENTPIPE_POSTGRES_DSN" not in llm
    assert all(env["EVENTPIPE_SASL_PASSWORD"] == "kafka-pw" for env in (ner, sink, llm))


def test_the_kill_hook_is_honoured_only_with_the_test_hooks_variable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from eventpipe.settings import TEST_HOOKS_ENV
    from eventpipe.stack import Stack

    monkeypatch.delenv(TEST_HOOKS_ENV, raising=False)
    settings = Settings(test_kill_doc_id="d1", data_dir=tmp_path)
    assert settings.armed_kill_doc_id is None
    assert TEST_HOOKS_ENV not in Stack(settings).service_env("ner")
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    assert settings.armed_kill_doc_id == "d1"
    # The local stack hands the variable to its services with the setting.
    env = Stack(settings).service_env("ner")
    assert env[TEST_HOOKS_ENV] == "1" and env["EVENTPIPE_TEST_KILL_DOC_ID"] == "d1"
