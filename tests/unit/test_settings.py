from pathlib import Path

import pytest

from core.settings import Settings, SettingsError, reference_table


def test_env_parsing_and_aliases() -> None:
    settings = Settings.from_env({
        "API_KEYS": "a, b,,c", "MODEL_ALIASES": "gpt-4o=grok-4.5-fast, claude=grok-4.5",
        "KV_REST_API_URL": "https://kv.example", "KV_REST_API_TOKEN": "t", "CHAT_TRANSPORT": "mgw",
    })
    assert settings.api_keys == ("a", "b", "c")
    assert settings.model_aliases == {"gpt-4o": "grok-4.5-fast", "claude": "grok-4.5"}
    assert settings.upstash_url == "https://kv.example" and settings.chat_transport == "mgw"
    assert Settings.from_env({"MODEL_ALIASES": '{"gpt-4o": "grok-4.5"}'}).model_aliases == {"gpt-4o": "grok-4.5"}


def test_every_problem_reported_once_per_variable() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"STORE_TIMEOUT": "soon", "CHAT_TRANSPORT": "ftp", "MAX_ATTEMPTS": "0"})
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("STORE_TIMEOUT:") for p in problems)
    assert any(p.startswith("CHAT_TRANSPORT:") for p in problems)
    assert any(p.startswith("MAX_ATTEMPTS:") for p in problems)


def test_production_has_no_default_secrets() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"APP_ENV": "production"})
    assert info.value.problems == ["ADMIN_PASSWORD: required when APP_ENV=production (there is no default)."]
    ok = Settings.from_env({"APP_ENV": "production", "ADMIN_PASSWORD": "x" * 20, "API_KEYS": "k"})
    assert ok.is_production
    # Without API_KEYS production starts: clients then need store-managed keys (never open: tests/e2e).
    assert Settings.from_env({"APP_ENV": "production", "ADMIN_PASSWORD": "x" * 20}).api_keys == ()


def test_upstash_pair_must_be_complete() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"UPSTASH_REDIS_REST_URL": "https://x"})


def test_s3_credentials_pair_must_be_complete() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"S3_ACCESS_KEY_ID": "AKIA"})
    assert info.value.problems == ["S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together."]


def test_async_video_drive_needs_a_function_to_invoke() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"VIDEO_DRIVE": "async"})
    assert info.value.problems[0].startswith("VIDEO_DRIVE: `async` hands each job to a Lambda function")
    # Not the function itself by default: the HTTP function's 29 s would cut every job off after it was charged.
    with pytest.raises(SettingsError):
        Settings.from_env({"VIDEO_DRIVE": "async", "AWS_LAMBDA_FUNCTION_NAME": "grok2api-prod-api"})
    worker = Settings.from_env({"VIDEO_DRIVE": "async", "AWS_LAMBDA_FUNCTION_NAME": "grok2api-prod-api",
                                "VIDEO_DISPATCH_FUNCTION": "grok2api-prod-videos"})
    assert worker.video_dispatch_function == "grok2api-prod-videos"


def test_bad_alias_json_is_a_clear_error() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"MODEL_ALIASES": "{broken"})
    assert info.value.problems[0].startswith("MODEL_ALIASES")


def test_readme_configuration_table_is_current() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert reference_table() in readme, "README's configuration table is stale: paste core.settings.reference_table()"


def test_cross_variable_rules_reported_alongside_malformed_values() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"APP_ENV": "production", "STORE_TIMEOUT": "soon"})
    problems = info.value.problems
    assert any(p.startswith("STORE_TIMEOUT:") for p in problems)
    assert any(p.startswith("ADMIN_PASSWORD:") for p in problems)
