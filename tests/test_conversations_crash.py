"""Offline turns of a conversation survive kill -9 of the real app between them: once OpenRouter answers
again they go out in order, each with the answer above in its context, each exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openrouter import FakeOpenRouter
from tests.test_robustness_crash import FAST_ENV, AppProcess, set_key, wait_for

MODEL = "openai/gpt-4o-mini"


def test_offline_turns_survive_kill_9_and_go_out_in_order_once(data_dir: Path) -> None:
    with FakeOpenRouter(token_delay=0.0) as fake:
        env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake.base_url}
        fake.go_offline()
        ids: list[str] = []
        for prompt in ("one", "two", "three"):
            app = AppProcess(data_dir, **env).start()
            if not ids:
                set_key(app.api, fake.key)
            body = {"kind": "text", "model": MODEL, "prompt": prompt}
            if ids:
                body["parent_id"] = ids[-1]
            r = app.api.post("/api/v1/generations", json=body)
            assert r.status_code in (202, 502), r.text
            record = r.json().get("generation", r.json())
            assert record["status"] == "queued"
            if ids:
                assert record["waiting_for"] == "parent" and record["parent_id"] == ids[-1]
            ids.append(record["id"])
            app.kill()
        assert not [q for q in fake.requests if q.path == "/chat/completions"]

        app = AppProcess(data_dir, **env).start()
        try:
            fake.go_online()
            done = wait_for(lambda: (g := app.api.get(f"/api/v1/generations/{ids[-1]}").json())["status"]
                            == "succeeded" and g, what="the third turn answered")
            assert done["output_text"] == "Echo: three"
            sent = [q.json["messages"] for q in fake.requests if q.path == "/chat/completions"]
            assert sent == [
                [{"role": "user", "content": "one"}],
                [{"role": "user", "content": "one"}, {"role": "assistant", "content": "Echo: one"},
                 {"role": "user", "content": "two"}],
                [{"role": "user", "content": "one"}, {"role": "assistant", "content": "Echo: one"},
                 {"role": "user", "content": "two"}, {"role": "assistant", "content": "Echo: two"},
                 {"role": "user", "content": "three"}],
            ]
            assert [c.prompt for c in fake.completions] == ["one", "two", "three"]
            for gen_id in ids:
                assert app.api.get(f"/api/v1/generations/{gen_id}").json()["status"] == "succeeded"
            conv = app.api.get(f"/api/v1/conversations/{done['conversation_id']}").json()
            assert [t["id"] for t in conv["turns"]] == ids and conv["leaf_id"] == ids[-1]
        finally:
            assert app.stop() == 0
