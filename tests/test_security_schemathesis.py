"""Schemathesis over the live backend's OpenAPI document (docs/security.md, "Files and the database").

The backend runs on loopback with a key configured against the fake OpenRouter, so generation routes do real
work. Schemathesis generates requests for every operation (schema examples, fuzzing, stateful sequences) and
checks every answer: no 5xx, status codes, content types, headers and bodies as documented, malformed input
rejected. ``positive_data_acceptance`` is left out on purpose: the schema cannot express the business rules
(an empty prompt, a key OpenRouter rejects, an unknown setting name), which rightly answer 4xx.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter

pytest.importorskip("schemathesis", reason="install the test extra (schemathesis) to run the schema fuzzer")

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}


@pytest.fixture
def live(data_dir: Path) -> Iterator[tuple[RunningApi, FakeOpenRouter]]:
    with FakeOpenRouter() as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
        try:
            with running.client() as api:
                assert api.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
                r = api.post("/api/v1/generations",
                             json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "seed"})
                assert r.status_code == 201
            yield running, fake
        finally:
            running.stop()


def test_schemathesis_finds_no_server_error_or_schema_violation(live, tmp_path: Path) -> None:
    running, fake = live
    # Workers stay at 1: CPython 3.11's ast.parse is not thread-safe and Hypothesis calls it for every filter.
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{running.url}/openapi.json",
        "--header", f"Authorization: Bearer {running.token}",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--phases", "examples,fuzzing,stateful",
        "--max-examples", "10", "--seed", "20240601", "--workers", "1", "--request-timeout", "30",
        "--suppress-health-check", "too_slow,filter_too_much",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = result.stdout[-20000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "passed" in result.stdout and "failed" not in result.stdout.lower().split("summary")[-1], report
    # The run really exercised the API, and the backend is still healthy afterwards.
    assert len(fake.requests) > 1
    assert httpx.get(f"{running.url}/api/v1/health", timeout=10).status_code == 200


def test_openapi_documents_errors_and_allow_header(api) -> None:
    """The error body and status codes are in the schema; a 405 names every method of the path."""
    with api.client() as client:
        schema = client.get("/openapi.json").json()
        assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
        op = schema["paths"]["/api/v1/generations/{gen_id}"]["get"]["responses"]
        for code in ("200", "401", "403", "404", "422", "500", "507"):
            assert code in op
        assert op["404"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
        assert "415" in schema["paths"]["/api/v1/assets"]["post"]["responses"]
        assert "401" not in schema["paths"]["/api/v1/health"]["get"]["responses"]
        r = client.request("OPTIONS", "/api/v1/settings")
        assert r.status_code == 405
        assert sorted(m.strip() for m in r.headers["allow"].split(",")) == ["GET", "PUT"]
        assert r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("value", ["0", "1700000000", "2024-1-1", "yesterday"])
def test_usage_dates_must_be_iso(api, value: str) -> None:
    with api.client() as client:
        r = client.get("/api/v1/usage", params={"to": value})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        assert client.get("/api/v1/usage", params={"from": "2024-01-01", "to": "2024-12-31"}).status_code == 200


@pytest.mark.parametrize("key", ["sk-or-v1-ünïcode-key", "sk-or-v1 with spaces", "sk-or-v1-\x00nul"])
def test_malformed_key_is_refused_before_anything_is_sent(data_dir: Path, fake_openrouter: FakeOpenRouter,
                                                          key: str) -> None:
    running = start_api(data_dir, openrouter_base_url=fake_openrouter.base_url)
    try:
        with running.client() as client:
            r = client.put("/api/v1/credentials", json={"api_key": key})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_key"
            assert client.get("/api/v1/credentials").json()["configured"] is False
        assert not [req for req in fake_openrouter.requests if "sk-or-v1" in (req.header("authorization") or "")]
    finally:
        running.stop()
