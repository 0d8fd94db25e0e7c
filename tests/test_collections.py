"""Collections and bulk actions through the real API: CRUD, membership, filters, and one transaction per call."""

from __future__ import annotations

import httpx
import pytest

from backend.db import generations as gens
from tests.test_generations import fake, generate, studio  # noqa: F401
from tests.test_media_generations import IMAGE_MODEL


def _deferred(client: httpx.Client, prompt: str, **body) -> str:
    r = generate(client, prompt=prompt, defer=True, **body)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _ids(client: httpx.Client, **filters) -> list[str]:
    return [item["id"] for item in client.get("/api/v1/generations", params=filters).json()["items"]]


def test_collections_crud_and_membership(studio) -> None:  # noqa: F811
    _, client = studio
    a, b, c = (_deferred(client, f"prompt {n}") for n in "abc")
    created = client.post("/api/v1/collections", json={"name": "  Posters  "})
    assert created.status_code == 201
    coll = created.json()
    assert coll["name"] == "Posters" and coll["items"] == 0

    added = client.post(f"/api/v1/collections/{coll['id']}/items",
                        json={"generation_ids": [a, b, a, "doesnotexist"]})
    assert added.json() == {"done": 2, "missing": ["doesnotexist"]}
    assert client.get(f"/api/v1/collections/{coll['id']}").json()["items"] == 2
    assert set(_ids(client, collection_id=coll["id"])) == {a, b}
    # Adding again changes nothing.
    client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [a]})
    assert client.get(f"/api/v1/collections/{coll['id']}").json()["items"] == 2

    removed = client.request("DELETE", f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [b]})
    assert removed.json() == {"done": 1, "missing": []}
    assert _ids(client, collection_id=coll["id"]) == [a]

    renamed = client.patch(f"/api/v1/collections/{coll['id']}", json={"name": "Finals"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Finals"
    listed = client.get("/api/v1/collections").json()
    assert [(item["name"], item["items"]) for item in listed["items"]] == [("Finals", 1)]

    assert client.delete(f"/api/v1/collections/{coll['id']}").status_code == 204
    assert set(_ids(client)) == {a, b, c}  # the items stay in the library
    for method in ("get", "delete"):
        r = getattr(client, method)(f"/api/v1/collections/{coll['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [a]})
    assert r.status_code == 404


def test_collection_list_pages(studio) -> None:  # noqa: F811
    _, client = studio
    names = [client.post("/api/v1/collections", json={"name": f"C{i}"}).json()["name"] for i in range(5)]
    first = client.get("/api/v1/collections", params={"limit": 3}).json()
    rest = client.get("/api/v1/collections", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [c["name"] for c in first["items"] + rest["items"]] == list(reversed(names))
    assert rest["next_cursor"] is None
    assert [c["name"] for c in client.get("/api/v1/collections", params={"q": "c3"}).json()["items"]] == ["C3"]


def test_bulk_favorite_tag_untag(studio) -> None:  # noqa: F811
    _, client = studio
    a, b = _deferred(client, "one", tags=["keep"]), _deferred(client, "two")

    def bulk(action: str, value: str | None = None, ids: list[str] | None = None) -> dict:
        r = client.post("/api/v1/generations/bulk", json={"ids": ids or [a, b], "action": action, "value": value})
        assert r.status_code == 200, r.text
        return r.json()

    assert bulk("favorite") == {"done": 2, "missing": []}
    assert set(_ids(client, favorite="true")) == {a, b}
    assert bulk("unfavorite", ids=[a, "nope"]) == {"done": 1, "missing": ["nope"]}
    assert _ids(client, favorite="true") == [b]
    bulk("tag", "poster")
    bulk("tag", "poster")  # once only
    tags = {item["id"]: item["tags"] for item in client.get("/api/v1/generations").json()["items"]}
    assert tags == {a: ["keep", "poster"], b: ["poster"]}
    bulk("untag", "keep")
    assert set(_ids(client, tag="keep")) == set() and set(_ids(client, tag="poster")) == {a, b}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"ids": [], "action": "favorite"}, 422),
        ({"ids": ["x"] * 501, "action": "favorite"}, 422),
        ({"ids": ["a"], "action": "explode"}, 422),
        ({"ids": ["a"], "action": "tag"}, 422),
        ({"ids": ["a/../b"], "action": "favorite"}, 422),
        ({"ids": ["a"], "action": "add_to_collection", "value": "missing"}, 404),
    ],
)
def test_bulk_refuses_bad_requests(studio, body: dict, status: int) -> None:  # noqa: F811
    _, client = studio
    r = client.post("/api/v1/generations/bulk", json=body)
    assert r.status_code == status
    assert "error" in r.json()


def test_bulk_delete_removes_rows_memberships_and_unshared_files(studio) -> None:  # noqa: F811
    running, client = studio
    image = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "fox"})
    assert image.status_code == 201, image.text
    asset = image.json()["assets"][0]
    path = running.settings.media_dir / asset["sha256"][:2] / asset["sha256"]
    assert path.exists()
    text = _deferred(client, "queued text")
    coll = client.post("/api/v1/collections", json={"name": "Board"}).json()
    client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [image.json()["id"], text]})

    r = client.post("/api/v1/generations/bulk",
                    json={"ids": [image.json()["id"], text, "gone"], "action": "delete"})
    assert r.json() == {"done": 2, "missing": ["gone"]}
    assert _ids(client) == []
    assert client.get(f"/api/v1/collections/{coll['id']}").json()["items"] == 0
    assert client.get(asset["url"]).status_code == 404
    assert not path.exists()
    assert client.get("/api/v1/queue").json()["items"] == []


def test_a_bulk_delete_that_fails_midway_changes_nothing(studio, monkeypatch) -> None:  # noqa: F811
    running, client = studio
    image = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "owl"}).json()
    text = _deferred(client, "kept")
    coll = client.post("/api/v1/collections", json={"name": "Board"}).json()
    client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": [image["id"], text]})
    # The last statement of the transaction fails: every earlier delete must be rolled back.
    monkeypatch.setattr(gens, "DELETE_ORDER", (*gens.DELETE_ORDER, ("no_such_table", "id")))

    r = client.post("/api/v1/generations/bulk", json={"ids": [image["id"], text], "action": "delete"})
    assert r.status_code == 500
    assert set(_ids(client)) == {image["id"], text}
    assert client.get(f"/api/v1/generations/{image['id']}").json()["assets"]
    assert client.get(f"/api/v1/collections/{coll['id']}").json()["items"] == 2
    assert client.get(image["assets"][0]["url"]).status_code == 200


def test_single_delete_keeps_a_file_another_generation_uses(studio) -> None:  # noqa: F811
    running, client = studio
    first = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "same"}).json()
    second = client.post("/api/v1/generations", json={"kind": "image", "model": IMAGE_MODEL, "prompt": "same"}).json()
    if first["assets"][0]["sha256"] != second["assets"][0]["sha256"]:
        pytest.skip("the fake answered two different images")
    assert client.delete(f"/api/v1/generations/{first['id']}").status_code == 204
    assert client.get(second["assets"][0]["url"]).status_code == 200


def test_collection_filter_reads_only_the_collection(studio) -> None:  # noqa: F811
    running, client = studio
    ids = [_deferred(client, f"p{i}") for i in range(4)]
    coll = client.post("/api/v1/collections", json={"name": "Two"}).json()
    client.post(f"/api/v1/collections/{coll['id']}/items", json={"generation_ids": ids[1:3]})
    assert _ids(client, collection_id=coll["id"]) == [ids[2], ids[1]]
    assert _ids(client, collection_id=coll["id"], q="p2") == [ids[2]]
    assert _ids(client, collection_id="nothing") == []


def test_tags_in_use_with_counts(studio) -> None:  # noqa: F811
    _, client = studio
    _deferred(client, "a", tags=["Poem", "draft"])
    _deferred(client, "b", tags=["draft"])
    _deferred(client, "c", tags=["drafty", "x"])
    tags = client.get("/api/v1/tags").json()
    assert tags["items"][0] == {"tag": "draft", "count": 2}
    assert {t["tag"]: t["count"] for t in tags["items"]} == {"draft": 2, "Poem": 1, "drafty": 1, "x": 1}
    assert [t["tag"] for t in client.get("/api/v1/tags", params={"q": "DRA"}).json()["items"]] == ["draft", "drafty"]
    assert [t["tag"] for t in client.get("/api/v1/tags", params={"q": "po", "limit": 1}).json()["items"]] == ["Poem"]
    assert client.get("/api/v1/tags", params={"limit": 0}).status_code == 422
