"""Settings read the documented variable names only."""

from pathlib import Path

from proposalflow.settings import Settings


def test_unrelated_environment_variables_do_not_leak_into_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("PROPOSALFLOW_HOME", raising=False)
    monkeypatch.delenv("PROPOSALFLOW_ENV", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ENVIRONMENT", "production")
    settings = Settings(_env_file=None)
    assert settings.home_dir == Path(tmp_path, ".proposalflow").resolve()
    assert settings.environment == "local"


def test_documented_names_and_dotenv_are_read(monkeypatch, tmp_path):
    monkeypatch.delenv("PROPOSALFLOW_HOME", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(f"PROPOSALFLOW_HOME={tmp_path / 'data'}\nPROPOSALFLOW_LLM=offline\n")
    settings = Settings(_env_file=env_file)
    assert settings.home_dir == (tmp_path / "data").resolve() and settings.llm_provider == "offline"
