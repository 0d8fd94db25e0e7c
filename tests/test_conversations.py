"""Conversations against the fake OpenRouter: the exact ``messages`` each turn sends (history from the
database, branches, edits, model switches, inherited system prompts, images, the context cap), waiting for a
parent, ``parent_failed``, and the /conversations routes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import RunningApi, start_api
from tests.fakes.behaviours import model_not_found
from tests.fakes.media import solid_png
from tests.fakes.openrouter import FakeOpenRouter

FAST = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "probe_seconds": 0.1, "video_poll_seconds": 0.05}
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(token_delay=0.0) as fake:
        yield fake


@pytest.fixture
def studio(data_dir: Path, fake: FakeOpenRouter) -> Iterator[tuple[RunningApi, httpx.Client]]:
    running = start_api(data_dir, openrouter_base_url=fake.base_url, **FAST)
    client = running.client()
    assert client.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
    yield running, client
    client.close()
    running.stop()


def turn(client: httpx.Client, prompt: str, *, expect: int = 201, **body) -> dict:
    r = client.post("/api/v1/generations", json={"kind": "text", "model": MODEL, "prompt": prompt, **body})
    assert r.status_code == expect, r.text
    data = r.json()
    return data.get("generation", data)


def sent_messages(fake: FakeOpenRouter) -> list[dict]:
    """The ``messages`` of the last chat request OpenRouter received."""
    return [q for q in fake.requests if q.path == "/chat/completions"][-1].json["messages"]


def chat_requests(fake: FakeOpenRouter) -> list[dict]:
    return [q.json for q in fake.requests if q.path == "/chat/completions"]


def wait_status(running: RunningApi, client: httpx.Client, gen_id: str, *statuses: str) -> dict:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        record = client.get(f"/api/v1/generations/{gen_id}").json()
        if record["status"] in statuses:
            return record
        time.sleep(0.05)
    raise AssertionError(f"{gen_id} never reached {statuses}: {record}")


def user(text) -> dict:
    return {"role": "user", "content": text}


def assistant(text) -> dict:
    return {"role": "assistant", "content": text}


def test_three_turn_thread_sends_the_whole_history(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    first = turn(client, "Name a colour")
    assert first["conversation_id"] and first["parent_id"] is None
    assert sent_messages(fake) == [user("Name a colour")]
    second = turn(client, "Another one", parent_id=first["id"])
    assert second["conversation_id"] == first["conversation_id"] and second["parent_id"] == first["id"]
    third = turn(client, "And a third", conversation_id=first["conversation_id"])  # after its latest turn
    assert third["parent_id"] == second["id"]
    assert sent_messages(fake) == [
        user("Name a colour"), assistant("Echo: Name a colour"),
        user("Another one"), assistant("Echo: Another one"),
        user("And a third"),
    ]
    assert third["context_dropped_turns"] == 0 and third["waiting_for"] is None


def test_turns_are_found_by_word_search(studio, fake: FakeOpenRouter) -> None:
    """Each turn is in the search index: its prompt as it is inserted, its answer once it arrives."""
    _, client = studio
    first = turn(client, "Tell me about quinces")
    reply = turn(client, "And about medlars", parent_id=first["id"])

    def found(q: str) -> list[str]:
        r = client.get("/api/v1/generations", params={"q": q})
        assert r.status_code == 200, r.text
        return [item["id"] for item in r.json()["items"]]

    assert found("quinces") == [first["id"]]
    assert found("medlars") == [reply["id"]]
    assert found("echo") == [reply["id"], first["id"]]  # the answers' text (newest first)


def test_regenerate_and_edit_never_send_the_other_branch(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.reply_text = "first answer"
    root = turn(client, "Write a haiku")
    fake.reply_text = "branch A"
    a = turn(client, "Make it rhyme", parent_id=root["id"])
    fake.reply_text = "branch B"
    regen = turn(client, "Make it rhyme", parent_id=root["id"])  # regenerate: same parent, same prompt
    assert sent_messages(fake) == [user("Write a haiku"), assistant("first answer"), user("Make it rhyme")]
    edit = turn(client, "Make it sad", parent_id=root["id"])  # edit: same parent, new prompt
    assert sent_messages(fake) == [user("Write a haiku"), assistant("first answer"), user("Make it sad")]
    fake.reply_text = None
    turn(client, "Shorter", parent_id=regen["id"])  # continue the regenerated branch
    assert sent_messages(fake) == [user("Write a haiku"), assistant("first answer"), user("Make it rhyme"),
                                   assistant("branch B"), user("Shorter")]
    assert "branch A" not in json.dumps(sent_messages(fake))
    conv = client.get(f"/api/v1/conversations/{root['conversation_id']}").json()
    ids = [t["id"] for t in conv["turns"]]
    assert ids[:4] == [root["id"], a["id"], regen["id"], edit["id"]] and len(ids) == 5
    assert [t["parent_id"] for t in conv["turns"][1:4]] == [root["id"]] * 3
    assert conv["leaf_id"] == ids[-1]


def test_model_switch_and_inherited_system_prompt(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    root = turn(client, "Hi", system="You are terse.")
    assert sent_messages(fake) == [{"role": "system", "content": "You are terse."}, user("Hi")]
    second = turn(client, "Explain DNS", parent_id=root["id"], model="anthropic/claude-sonnet-4.5")
    request = chat_requests(fake)[-1]
    assert request["model"] == "anthropic/claude-sonnet-4.5"
    assert request["messages"] == [{"role": "system", "content": "You are terse."}, user("Hi"), assistant("Echo: Hi"),
                                   user("Explain DNS")]
    third = turn(client, "Again", parent_id=second["id"], system="You are verbose.")  # changed for this turn on
    assert sent_messages(fake)[0] == {"role": "system", "content": "You are verbose."}
    turn(client, "Once more", parent_id=third["id"], model=MODEL)
    request = chat_requests(fake)[-1]
    assert request["model"] == MODEL
    assert request["messages"][0] == {"role": "system", "content": "You are verbose."}  # the nearest ancestor's
    assert [m["role"] for m in request["messages"]] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    listing = client.get("/api/v1/conversations").json()["items"]
    assert listing[0]["id"] == root["conversation_id"] and listing[0]["last_model"] == MODEL
    assert listing[0]["turns"] == 4 and listing[0]["cost_usd"] > 0 and listing[0]["title"] == "Hi"


def test_image_turn_sends_content_parts_and_stays_in_the_history(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    png = solid_png(4, 4)
    asset = client.post("/api/v1/assets", content=png, headers={"Content-Type": "image/png"}).json()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    first = turn(client, "What is in this picture?", input_asset_ids=[asset["id"]])
    parts = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]
    assert sent_messages(fake) == [user(parts)]
    turn(client, "And its colour?", parent_id=first["id"])
    assert sent_messages(fake) == [user(parts), assistant("Echo: What is in this picture?"), user("And its colour?")]


def test_images_for_a_model_that_cannot_see_them_are_refused_at_admission(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    assert client.get("/api/v1/models", params={"output": "text", "refresh": True}).status_code == 200
    asset = client.post("/api/v1/assets", content=solid_png(4, 4), headers={"Content-Type": "image/png"}).json()
    blind = "meta-llama/llama-3.3-70b-instruct:free"  # the catalogue lists text as its only input
    for kind, stream in (("text", False), ("text", True), ("image", False)):
        r = client.post("/api/v1/generations", json={"kind": kind, "model": blind, "prompt": "What is this?",
                                                     "input_asset_ids": [asset["id"]], "stream": stream})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "model_cannot_see_images" and blind in error["message"]
    assert client.get("/api/v1/generations").json()["items"] == [] and chat_requests(fake) == []
    assert turn(client, "No images here", model=blind)["status"] == "succeeded"  # text alone is fine
    assert turn(client, "What is this?", input_asset_ids=[asset["id"]])["status"] == "succeeded"  # it can see
    # A model the catalogue does not know: its modalities are unknown, so the request goes to OpenRouter, which
    # decides (the fake does not know it either).
    unknown = turn(client, "What is this?", expect=400, model="someone/brand-new-model",
                   input_asset_ids=[asset["id"]])
    assert unknown["error"]["code"] == "model_not_found" and len(chat_requests(fake)) == 3


def test_refine_sends_the_parent_images_as_inputs(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    model = "google/gemini-2.5-flash-image"
    r = client.post("/api/v1/generations", json={"kind": "image", "model": model, "prompt": "a red fox"})
    assert r.status_code == 201, r.text
    image = r.json()
    assert image["conversation_id"] is None  # an image alone is not a conversation
    png = client.get(image["assets"][0]["url"]).content
    r = client.post("/api/v1/generations", json={"kind": "image", "model": model, "prompt": "make it blue",
                                                 "parent_id": image["id"], "params": {"aspect_ratio": "1:1"}})
    assert r.status_code == 201, r.text
    refined = r.json()
    assert refined["conversation_id"] == image["id"] and refined["parent_id"] == image["id"]
    content = sent_messages(fake)[-1]["content"]
    assert content[0] == {"type": "text", "text": "make it blue"}
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert client.get(f"/api/v1/generations/{image['id']}").json()["conversation_id"] == image["id"]
    conv = client.get(f"/api/v1/conversations/{image['id']}").json()
    assert [t["id"] for t in conv["turns"]] == [image["id"], refined["id"]]


def test_a_long_history_is_cut_to_the_model_window_oldest_first(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    small = "meta-llama/llama-3.3-70b-instruct:free"  # 65,536 tokens
    client.get("/api/v1/models", params={"output": "text"})  # the catalogue knows the window
    words = ["alpha ", "bravo ", "charlie "]
    first = turn(client, words[0] * 10_000, model=small)  # 60,000 characters, then the same back
    second = turn(client, words[1] * 10_000, parent_id=first["id"], model=small)
    third = turn(client, words[2] * 2_000, parent_id=second["id"], model=small)
    messages = sent_messages(fake)
    assert messages[0] == user(words[1] * 10_000) and messages[-1] == user(words[2] * 2_000)
    assert len(messages) == 3 and "alpha" not in json.dumps(messages)
    assert third["context_dropped_turns"] == 1
    assert client.get(f"/api/v1/generations/{third['id']}").json()["context_dropped_turns"] == 1
    assert [q.status for q in fake.requests if q.path == "/chat/completions"] == [200, 200, 200]


def test_regenerating_or_editing_the_first_turn_is_a_sibling_in_the_same_conversation(
        studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    fake.reply_text = "first answer"
    root = turn(client, "Write a haiku")
    reply = turn(client, "Shorter", parent_id=root["id"])
    fake.reply_text = "second answer"
    regen = turn(client, "Write a haiku", sibling_of=root["id"])  # regenerate the first turn
    assert sent_messages(fake) == [user("Write a haiku")]  # nothing of the other branch
    edit = turn(client, "Write a limerick", sibling_of=root["id"], conversation_id=root["conversation_id"])
    assert sent_messages(fake) == [user("Write a limerick")]
    conversation_id = root["conversation_id"]
    assert [g["conversation_id"] for g in (regen, edit)] == [conversation_id] * 2
    assert [g["parent_id"] for g in (regen, edit)] == [None, None]
    conv = client.get(f"/api/v1/conversations/{conversation_id}").json()
    assert [t["id"] for t in conv["turns"]] == [root["id"], reply["id"], regen["id"], edit["id"]]
    assert conv["leaf_id"] == edit["id"] and conv["title"] == "Write a haiku"
    assert len(client.get("/api/v1/conversations").json()["items"]) == 1  # no new conversation
    # A later turn's sibling answers after the same parent, as parent_id does.
    again = turn(client, "Shorter", sibling_of=reply["id"])
    assert again["parent_id"] == root["id"] and again["conversation_id"] == conversation_id
    assert sent_messages(fake) == [user("Write a haiku"), assistant("first answer"), user("Shorter")]
    # Refused: with parent_id too, from another conversation, an unknown turn, a video.
    other = turn(client, "another thread")
    for body, status in (({"sibling_of": root["id"], "parent_id": root["id"]}, 422),
                         ({"sibling_of": root["id"], "conversation_id": other["conversation_id"]}, 422),
                         ({"sibling_of": "f" * 32}, 404)):
        r = client.post("/api/v1/generations", json={"kind": "text", "model": MODEL, "prompt": "x", **body})
        assert r.status_code == status, r.text
    r = client.post("/api/v1/generations", json={"kind": "video", "model": "google/veo-3.1", "prompt": "x",
                                                 "sibling_of": root["id"]})
    assert r.status_code == 422


def test_conversation_ids_are_checked(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    one = turn(client, "one")
    two = turn(client, "two")
    r = client.post("/api/v1/generations", json={"kind": "text", "model": MODEL, "prompt": "x",
                                                 "conversation_id": one["conversation_id"], "parent_id": two["id"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.post("/api/v1/generations", json={"kind": "text", "model": MODEL, "prompt": "x",
                                                 "conversation_id": "0" * 32})
    assert r.status_code == 404
    r = client.post("/api/v1/generations", json={"kind": "text", "model": MODEL, "prompt": "x", "parent_id": "f" * 32})
    assert r.status_code == 404
    r = client.post("/api/v1/generations", json={"kind": "video", "model": "google/veo-3.1", "prompt": "x",
                                                 "parent_id": one["id"]})
    assert r.status_code == 422
    assert len(chat_requests(fake)) == 2


def test_a_turn_waits_for_its_parent_and_fails_when_the_parent_fails(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.enqueue("/chat/completions", model_not_found(MODEL))
    assert client.post("/api/v1/queue/pause").status_code == 200  # both are stored before anything is sent
    root = turn(client, "first", expect=202)
    child = turn(client, "second", parent_id=root["id"], expect=202)
    assert child["status"] == "queued" and child["waiting_for"] == "parent"
    assert client.post("/api/v1/queue/resume").status_code == 200
    assert wait_status(running, client, root["id"], "failed")["error"]["code"] == "model_not_found"
    failed = wait_status(running, client, child["id"], "failed")
    assert failed["error"]["code"] == "parent_failed" and failed["waiting_for"] is None
    r = client.post(f"/api/v1/generations/{child['id']}/retry")  # the parent first
    assert r.status_code == 409 and r.json()["error"]["code"] == "parent_failed"
    assert client.post(f"/api/v1/generations/{root['id']}/retry").status_code == 202
    assert client.post(f"/api/v1/generations/{child['id']}/retry").status_code == 202
    done = wait_status(running, client, child["id"], "succeeded")
    assert done["output_text"] == "Echo: second"
    assert sent_messages(fake) == [user("first"), assistant("Echo: first"), user("second")]
    assert [m["content"] for r in chat_requests(fake) for m in r["messages"][-1:]] == ["first", "first", "second"]


def test_a_reply_to_a_turn_that_already_failed_fails_with_parent_failed(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.enqueue("/chat/completions", model_not_found(MODEL))
    root = turn(client, "first", expect=400)
    assert root["status"] == "failed"
    child = turn(client, "second", parent_id=root["id"], expect=202)
    assert child["status"] == "queued" and child["waiting_for"] is None
    assert wait_status(running, client, child["id"], "failed")["error"]["code"] == "parent_failed"
    assert len(chat_requests(fake)) == 1  # nothing was sent for the reply


def test_offline_turns_queue_in_order_and_each_goes_once_with_the_answer_above(studio, fake: FakeOpenRouter) -> None:
    running, client = studio
    fake.go_offline()
    first = turn(client, "one", expect=502)
    assert first["status"] == "queued"
    second = turn(client, "two", parent_id=first["id"], expect=202)
    third = turn(client, "three", parent_id=second["id"], expect=202)
    assert second["waiting_for"] == "parent" and third["waiting_for"] == "parent"
    fake.go_online()
    wait_status(running, client, third["id"], "succeeded")
    running.outbox_settled()
    requests = chat_requests(fake)
    assert [r["messages"] for r in requests] == [
        [user("one")],
        [user("one"), assistant("Echo: one"), user("two")],
        [user("one"), assistant("Echo: one"), user("two"), assistant("Echo: two"), user("three")],
    ]
    assert [c.prompt for c in fake.completions] == ["one", "two", "three"]


def test_conversation_routes(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    a = turn(client, "Plan a trip to Lisbon for three days please")
    turn(client, "Add museums", parent_id=a["id"])
    b = turn(client, "Something else entirely")
    listing = client.get("/api/v1/conversations").json()
    assert [i["id"] for i in listing["items"]] == [b["conversation_id"], a["conversation_id"]]
    item = listing["items"][1]
    assert set(item) == {"id", "title", "turns", "last_model", "cost_usd", "created_at", "updated_at"}
    assert item["turns"] == 2 and item["title"].startswith("Plan a trip")
    assert [i["id"] for i in client.get("/api/v1/conversations", params={"q": "museums"}).json()["items"]] == [
        a["conversation_id"]]
    page = client.get("/api/v1/conversations", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get("/api/v1/conversations", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [a["conversation_id"]] and rest["next_cursor"] is None
    r = client.patch(f"/api/v1/conversations/{a['conversation_id']}", json={"title": "Lisbon"})
    assert r.status_code == 200 and r.json()["title"] == "Lisbon"
    assert client.get("/api/v1/conversations").json()["items"][0]["id"] == a["conversation_id"]  # activity
    assert client.patch(f"/api/v1/conversations/{a['conversation_id']}", json={"nope": 1}).status_code == 422
    assert client.delete(f"/api/v1/conversations/{a['conversation_id']}").status_code == 204
    assert client.get(f"/api/v1/generations/{a['id']}").status_code == 404
    assert client.get(f"/api/v1/conversations/{a['conversation_id']}").status_code == 404
    assert client.delete(f"/api/v1/conversations/{a['conversation_id']}").status_code == 404


def test_existing_text_generations_become_one_turn_conversations(tmp_path: Path) -> None:
    from backend.db.migrations import MIGRATIONS
    from backend.db.store import migrate

    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
    before = [m for m in MIGRATIONS if m[0] < "0004_conversations"]
    for name, sql in before:
        from backend.db.migrations import _split_sql

        for statement in _split_sql(sql):
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
    for gen_id, kind in (("t1", "text"), ("i1", "image")):
        con.execute("INSERT INTO generations (id, kind, status, model, prompt, created_at, updated_at) "
                    "VALUES (?, ?, 'succeeded', 'm', 'p', now(), now())", [gen_id, kind])
    assert migrate(con)[0] == "0004_conversations"
    rows = dict(con.execute("SELECT id, conversation_id FROM generations").fetchall())
    assert rows == {"t1": "t1", "i1": None}
    assert con.execute("SELECT id FROM conversations").fetchall() == [("t1",)]


def test_markdown_export_of_a_conversation_is_one_document(studio, fake: FakeOpenRouter) -> None:
    import io
    import zipfile

    _, client = studio
    root = turn(client, "Name a river")
    second = turn(client, "How long is it?", parent_id=root["id"])
    turn(client, "Where does it start?", parent_id=root["id"])  # another branch
    turn(client, "Name a lake", sibling_of=root["id"])  # the first turn edited
    turn(client, "Something else")  # another conversation, not exported
    r = client.post("/api/v1/exports", json={"format": "markdown",
                                             "filter": {"conversation_id": root["conversation_id"]}})
    assert r.status_code == 201, r.text
    assert r.json()["items"] == 4
    zf = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/exports/{r.json()['id']}").content))
    docs = [n for n in zf.namelist() if n.endswith(".md") and n != "index.md"]
    assert len(docs) == 1 and docs[0].endswith("-conversation.md")
    text = zf.read(docs[0]).decode()
    assert text.startswith("# Name a river") and "**Turns:** 4" in text
    assert text.index("Name a river") < text.index("How long is it?") < text.index("Where does it start?") \
        < text.index("Name a lake")
    assert "*Another branch: answers turn 1.*" in text and "Echo: How long is it?" in text
    assert text.index("*Another branch: a new first turn.*") < text.index("Name a lake")
    assert "Something else" not in text and second["id"]
    assert "conversation, 4 turns" in zf.read("index.md").decode()


def test_a_backup_restores_conversations_with_their_titles(studio, fake: FakeOpenRouter) -> None:
    _, client = studio
    root = turn(client, "Before the backup")
    turn(client, "Second", parent_id=root["id"])
    conv = root["conversation_id"]
    assert client.patch(f"/api/v1/conversations/{conv}", json={"title": "Kept"}).status_code == 200
    made = client.post("/api/v1/backups")
    assert made.status_code == 201, made.text
    assert client.delete(f"/api/v1/conversations/{conv}").status_code == 204
    restored = client.post(f"/api/v1/backups/{made.json()['id']}/restore")
    assert restored.status_code == 200, restored.text
    back = client.get(f"/api/v1/conversations/{conv}").json()
    assert back["title"] == "Kept" and [t["prompt"] for t in back["turns"]] == ["Before the backup", "Second"]
