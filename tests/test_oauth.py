"""Sign in with OpenRouter (OAuth PKCE) against the fake's consent page and key exchange."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx
import pytest

from backend.keys.oauth import OAuthFlows, code_challenge, is_loopback_callback, site_url
from tests.conftest import start_api
from tests.fakes.openrouter import FakeOpenRouter


def test_pkce_helpers() -> None:
    challenge = code_challenge("a" * 43)
    assert len(challenge) == 43 and "=" not in challenge and set(challenge) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert site_url("https://openrouter.ai/api/v1") == "https://openrouter.ai"
    assert site_url("http://127.0.0.1:5000/api/v1/") == "http://127.0.0.1:5000"
    assert is_loopback_callback("http://localhost:5000/oauth/callback")
    assert is_loopback_callback("http://127.0.0.1:5000/cb")
    assert not is_loopback_callback("https://evil.example/cb")
    assert not is_loopback_callback("http://localhost/cb")  # no port
    assert not is_loopback_callback("http://10.0.0.1:80/cb")


def test_flows_are_single_use_and_expire() -> None:
    now = [0.0]
    flows = OAuthFlows(clock=lambda: now[0])
    state, url = flows.start("https://openrouter.ai/api/v1", "http://localhost:9999/oauth/callback")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith("https://openrouter.ai/auth?")
    assert query["code_challenge_method"] == "S256" and "code_verifier" not in url
    assert query["callback_url"] == f"http://localhost:9999/oauth/callback/{state}"
    verifier = flows.take(state)
    assert code_challenge(verifier) == query["code_challenge"]
    with pytest.raises(Exception, match="expired or was already used"):
        flows.take(state)
    state2, _ = flows.start("https://openrouter.ai/api/v1", "http://localhost:9999/cb")
    now[0] = 601
    with pytest.raises(Exception, match="expired"):
        flows.take(state2)


def test_sign_in_end_to_end(data_dir: Path) -> None:
    with FakeOpenRouter() as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with running.client() as c:
                r = c.post("/api/v1/credentials/oauth/start", json={"callback_base": "http://localhost:5555/cb"})
                assert r.status_code == 200
                start = r.json()
                consent = httpx.get(start["auth_url"])  # the user approves in the browser
                assert consent.status_code == 302
                location = urllib.parse.urlsplit(consent.headers["location"])
                assert location.path == f"/cb/{start['state']}"
                code = dict(urllib.parse.parse_qsl(location.query))["code"]
                done = c.post("/api/v1/credentials/oauth/finish", json={"state": start["state"], "code": code})
                assert done.status_code == 200, done.text
                body = done.json()
                assert body["configured"] and body["verified"]
                exchange = [q for q in fake.requests if q.path.endswith("/auth/keys")][0]
                assert "authorization" not in exchange.headers
                # the new key works for generation
                gen = c.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                          "prompt": "hi"})
                assert gen.status_code == 201
                again = c.post("/api/v1/credentials/oauth/finish", json={"state": start["state"], "code": code})
                assert again.status_code == 400 and again.json()["error"]["code"] == "oauth_state_invalid"
                bad = c.post("/api/v1/credentials/oauth/start", json={"callback_base": "https://evil.example/cb"})
                assert bad.status_code == 422
        finally:
            running.stop()


def test_wrong_code_is_reported(data_dir: Path) -> None:
    with FakeOpenRouter() as fake:
        running = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with running.client() as c:
                start = c.post("/api/v1/credentials/oauth/start", json={"callback_base": "http://127.0.0.1:5555/cb"})
                r = c.post("/api/v1/credentials/oauth/finish", json={"state": start.json()["state"], "code": "nope"})
                assert r.status_code == 400 and r.json()["error"]["code"] == "oauth_failed"
                assert c.get("/api/v1/credentials").json()["configured"] is False
        finally:
            running.stop()
