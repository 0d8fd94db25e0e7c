"""Machine policy: loading, validation, locking, model globs, the documented schema and example."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from backend.core.policy import (
    POLICY_DOCS,
    POLICY_ENV_VAR,
    Policy,
    PolicyError,
    PolicyValue,
    default_policy_path,
    load_policy,
    read_policy_key,
)

ROOT = Path(__file__).resolve().parent.parent


def write_policy(tmp_path: Path, document: object, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def make_ca_pem(tmp_path: Path) -> Path:
    """A real self-signed CA certificate in PEM form (openssl CLI, or skip)."""
    pem = tmp_path / "corp-ca.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Corp Test CA",
                "-keyout",
                str(tmp_path / "ca.key"),
                "-out",
                str(pem),
            ],
            check=True,
            capture_output=True,
        )
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("openssl CLI not available")
    return pem


def test_missing_file_is_an_empty_policy(tmp_path):
    policy = load_policy(tmp_path / "absent.json", env={})
    assert policy.path is None
    assert dict(policy.values) == {}
    assert policy.get("proxy") is None
    assert not policy.is_locked("openrouter_base_url")
    assert policy.model_allowed("anything/at-all")
    assert policy.user_key_allowed


def test_env_var_names_the_file(tmp_path):
    path = write_policy(tmp_path, {"theme": "dark"})
    policy = load_policy(env={POLICY_ENV_VAR: str(path)})
    assert policy.path == path
    assert policy.get("theme") == PolicyValue("dark", False)


def test_explicit_path_beats_env_var(tmp_path):
    first = write_policy(tmp_path, {"theme": "dark"}, "a.json")
    second = write_policy(tmp_path, {"theme": "light"}, "b.json")
    assert load_policy(first, env={POLICY_ENV_VAR: str(second)}).value("theme") == "dark"


def test_default_path_is_in_the_site_config_dir():
    path = default_policy_path()
    assert path.name == "policy.json"
    assert path.parent.name == "Atelier"


def test_bare_values_are_defaults_and_wrapped_values_can_be_locked(tmp_path):
    path = write_policy(
        tmp_path,
        {
            "$schema": "https://atelier.invalid/policy.schema.json",
            "openrouter_base_url": {"value": "https://gateway.corp.example/api/v1/", "locked": True},
            "default_model_text": "openai/gpt-4o-mini",
            "budget_monthly_usd": {"value": 25, "locked": False},
            "outbox_concurrency": {"value": 4},
        },
    )
    policy = load_policy(path, env={})
    assert policy.get("openrouter_base_url") == PolicyValue("https://gateway.corp.example/api/v1", True)
    assert policy.is_locked("openrouter_base_url")
    assert policy.get("default_model_text") == PolicyValue("openai/gpt-4o-mini", False)
    assert not policy.is_locked("default_model_text")
    assert policy.get("budget_monthly_usd") == PolicyValue(25.0, False)
    assert policy.get("outbox_concurrency") == PolicyValue(4, False)
    assert policy.locked_names == ("openrouter_base_url",)
    assert policy.defaults["default_model_text"] == "openai/gpt-4o-mini"
    assert "$schema" not in policy.values
    with pytest.raises(TypeError):
        policy.values["theme"] = PolicyValue("dark", True)  # type: ignore[index]


def test_the_shipped_example_is_valid(tmp_path):
    example = json.loads((ROOT / "packaging" / "policy.example.json").read_text(encoding="utf-8"))
    # The example points at machine paths; give it real files so the path checks pass here too.
    example["ca_bundle"]["value"] = str(make_ca_pem(tmp_path))
    example["api_key_file"] = str(tmp_path / "key.txt")
    policy = load_policy(write_policy(tmp_path, example), env={})
    assert set(policy.values) == {name for name, _, _ in POLICY_DOCS}


def test_model_allowed_uses_case_insensitive_globs(tmp_path):
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "allowed_models": {
                    "value": ["openai/gpt-4o*", "Anthropic/*", "google/gemini-2.5-flash-image"],
                    "locked": True,
                },
            },
        ),
        env={},
    )
    assert policy.model_allowed("openai/gpt-4o-mini")
    assert policy.model_allowed("OPENAI/GPT-4O")
    assert policy.model_allowed("anthropic/claude-sonnet-4")
    assert policy.model_allowed("google/gemini-2.5-flash-image")
    assert not policy.model_allowed("google/gemini-2.5-flash-image-preview")
    assert not policy.model_allowed("openai/o3")
    assert not policy.model_allowed("meta-llama/llama-3-70b")


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"budget_monthly_usd": "ten"}, "'budget_monthly_usd' must be a number ≥ 0 (got \"ten\")"),
        ({"budget_monthly_usd": -1}, "'budget_monthly_usd' must be a number ≥ 0 (got -1)"),
        ({"budget_monthly_usd": True}, "'budget_monthly_usd' must be a number ≥ 0 (got true)"),
        ({"allowed_modles": ["openai/*"]}, "unknown key 'allowed_modles'. Did you mean 'allowed_models'?"),
        ({"allowed_models": []}, "'allowed_models' must be a non-empty list"),
        ({"allowed_models": "openai/*"}, "'allowed_models' must be a non-empty list"),
        ({"allowed_models": ["openai/*", 3]}, "'allowed_models' must contain only model id patterns"),
        ({"openrouter_base_url": "http://openrouter.ai/api/v1"}, "'openrouter_base_url' must be an https://"),
        ({"openrouter_base_url": "ftp://x.example"}, "'openrouter_base_url' must be an https://"),
        ({"openrouter_base_url": "https://u:p@x.example/api"}, "without credentials"),
        ({"openrouter_base_url": "https://x.example:99999/api"}, "'openrouter_base_url' must be an https://"),
        ({"allow_user_key": "no"}, "'allow_user_key' must be true or false (got \"no\")"),
        ({"retry_unknown_text": 1}, "'retry_unknown_text' must be true or false (got 1)"),
        ({"outbox_concurrency": 0}, "'outbox_concurrency' must be a whole number between 1 and 16 (got 0)"),
        ({"outbox_concurrency": 17}, "'outbox_concurrency' must be a whole number between 1 and 16 (got 17)"),
        ({"outbox_concurrency": 2.5}, "'outbox_concurrency' must be a whole number"),
        ({"outbox_max_queued": 0}, "'outbox_max_queued' must be a whole number ≥ 1 (got 0)"),
        ({"outbox_max_queued": "100"}, "'outbox_max_queued' must be a whole number ≥ 1"),
        ({"proxy": "socks5://proxy:1080"}, "'proxy' must be an http:// or https:// proxy URL"),
        ({"proxy": 3128}, "'proxy' must be an http:// or https:// proxy URL"),
        ({"theme": "neon"}, '\'theme\' must be one of "system", "light", "dark"'),
        ({"default_model_text": ""}, "'default_model_text' must be a model id"),
        ({"default_model_image": ["a/b"]}, "'default_model_image' must be a model id"),
        ({"ca_bundle": "does-not-exist.pem"}, "'ca_bundle' must name an existing PEM file"),
        ({"theme": {"value": "dark", "locked": "yes"}}, "'theme.locked' must be true or false"),
        ({"theme": {"locked": True}}, "'theme' is missing \"value\""),
        ({"theme": {"value": "dark", "lock": True}}, "'theme' has unknown field(s) 'lock'"),
        (["theme", "dark"], "the top level must be a JSON object (got a list)"),
        (
            {"allowed_models": ["openai/*"], "default_model_video": "google/veo-3"},
            "'default_model_video' 'google/veo-3' is not matched by 'allowed_models'",
        ),
    ],
)
def test_invalid_policies_name_the_file_and_the_field(tmp_path, document, fragment):
    path = write_policy(tmp_path, document)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env={})
    message = str(caught.value)
    assert message.startswith(f"Policy file {path}: ")
    assert fragment in message


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{\n  "theme": "dark",\n  "proxy": \n}\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"invalid JSON at line 4, column 1"):
        load_policy(path, env={})


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "policy.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"theme": "light"}).encode())
    assert load_policy(path, env={}).value("theme") == "light"


def test_non_utf8_and_directories_are_reported(tmp_path):
    path = tmp_path / "policy.json"
    path.write_bytes(b'{"theme": "\xff"}')
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path, env={})
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path, env={})


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_reported(tmp_path):
    path = write_policy(tmp_path, {"theme": "dark"})
    path.chmod(0)
    with pytest.raises(PolicyError, match="cannot be read by this user"):
        load_policy(path, env={})


def test_proxy_credentials_are_not_echoed_in_errors(tmp_path):
    path = write_policy(tmp_path, {"proxy": "socks5://user:hunter2@proxy:1080"})
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env={})
    assert "hunter2" not in str(caught.value)


def test_relative_paths_resolve_against_the_policy_folder(tmp_path):
    ca = make_ca_pem(tmp_path)
    path = write_policy(tmp_path, {"ca_bundle": ca.name, "api_key_file": "keys/openrouter.key"})
    policy = load_policy(path, env={})
    assert policy.value("ca_bundle") == str(ca)
    assert policy.value("api_key_file") == str(tmp_path / "keys" / "openrouter.key")


def test_ca_bundle_must_hold_certificates(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="'ca_bundle' .* holds no usable PEM CA certificates"):
        load_policy(write_policy(tmp_path, {"ca_bundle": str(junk)}), env={})


def test_read_policy_key(tmp_path):
    sentinel = "sk-or-v1-SENTINEL-policy-key-0000"
    key_file = tmp_path / "openrouter.key"
    policy = load_policy(
        write_policy(
            tmp_path,
            {
                "allow_user_key": {"value": False, "locked": True},
                "api_key_file": str(key_file),
            },
        ),
        env={},
    )
    assert not policy.user_key_allowed
    with pytest.raises(PolicyError, match="does not exist") as caught:
        read_policy_key(policy)
    key_file.write_text("", encoding="utf-8")
    with pytest.raises(PolicyError, match="is empty"):
        read_policy_key(policy)
    key_file.write_text(f"{sentinel} {sentinel}\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="exactly one key") as caught:
        read_policy_key(policy)
    assert sentinel not in str(caught.value)
    key_file.write_text(f"  {sentinel}\r\n", encoding="utf-8")
    assert read_policy_key(policy) == sentinel
    assert read_policy_key(Policy()) is None


def test_schema_and_docs_cover_every_key():
    schema = json.loads((ROOT / "docs" / "policy.schema.json").read_text(encoding="utf-8"))
    names = [name for name, _, _ in POLICY_DOCS]
    assert sorted(n for n in schema["properties"] if n != "$schema") == sorted(names)
    assert schema["additionalProperties"] is False
    docs = (ROOT / "docs" / "it-deployment.md").read_text(encoding="utf-8")
    for name in names:
        assert re.search(rf"^\| `{name}` \|", docs, re.MULTILINE), f"{name} missing from the policy reference"
