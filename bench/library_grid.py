"""Library image grid with thousands of stored images: page time, page size, thumbnails only.

The fixture is built before the app starts: ``--images`` (default 5,000) distinct 512×512 PNGs are stored
through the backend's ``MediaStore`` (content-addressed files plus their thumbnails, on both cores), and one
succeeded image ``generations`` row plus one ``assets`` row per image are inserted with DuckDB into a database
created by the backend's own migrations. Then the app starts on that data dir and the Library grid
(``GET /library?kind=image``, logged in) is fetched ``--runs`` times, as is the "Load more" page
(``?partial=1&cursor=…``) and, for attribution, the backend list call behind it.

Every asset URL on the page is then fetched and its bytes compared with the stored files: a page that makes
the browser download full-size originals for a grid fails the "thumbnails only" check.

    .venv/bin/python bench/library_grid.py [--runs 50] [--images 5000] [--data-dir DIR] [--json [PATH]]

``--data-dir`` keeps the fixture in DIR and reuses it on the next run (built once if DIR is empty).
Target (issue 4): the grid page served in under 100 ms, referencing thumbnails only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import (
    app_env,
    base_parser,
    emit,
    log,
    ms,
    start_app,
    start_fake,
    stop_app,
    summarize,
    table,
    temp_dir,
    verdict,
)

TARGET_PAGE_MS = 100.0
IMAGE_MODEL = "google/gemini-2.5-flash-image-preview"
FIXTURE_MARK = "bench-fixture.json"
_ASSET_URL = re.compile(r"""(?:src|href|srcset|poster)=["']([^"']*assets/[^"']*)["']""")
_IMG_TAG = re.compile(r"<img\b[^>]*>")


# ---------------------------------------------------------------------------------------------- fixture


def _make_png(i: int, size: int) -> bytes:
    """A distinct PNG for index ``i``: two gradients and a flat channel that together never repeat."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((size, size))
    radial = Image.radial_gradient("L").resize((size, size)).rotate(i % 360)
    flat = Image.new("L", (size, size), i % 256)
    image = Image.merge("RGB", (gradient, radial, flat))
    image.putpixel((0, 0), (i >> 16 & 255, i >> 8 & 255, i & 255))  # the index itself, to be sure
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _store_batch(media_dir: str, indices: list[int], size: int) -> list[dict[str, Any]]:
    """Worker: store PNGs through the backend's MediaStore; returns what the assets rows need."""
    from backend.media import MediaStore

    store = MediaStore(Path(media_dir))
    rows = []
    for i in indices:
        info = store.put_bytes(_make_png(i, size), "image/png")
        rows.append({"i": i, "sha256": info.sha256, "thumb_sha256": info.thumb_sha256, "bytes": info.bytes,
                     "mime": info.mime, "width": info.width, "height": info.height})
    return rows


def build_fixture(data_dir: Path, count: int, size: int) -> dict[str, Any]:
    """Create the database (backend migrations), store ``count`` images, insert their rows."""
    import duckdb

    from backend.db.store import Store

    data_dir.mkdir(parents=True, exist_ok=True)
    media_dir = data_dir / "media"
    media_dir.mkdir(exist_ok=True)
    db_path = data_dir / "atelier.duckdb"
    Store.open(db_path, backups_dir=data_dir / "backups").close()

    t0 = time.perf_counter()
    workers = max(1, os.cpu_count() or 1)
    batches = [list(range(start, min(start + 250, count))) for start in range(0, count, 250)]
    stored: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_store_batch, str(media_dir), batch, size) for batch in batches]
        for n, future in enumerate(futures, 1):
            stored.extend(future.result())
            if n % 4 == 0 or n == len(futures):
                log(f"fixture: {len(stored)}/{count} images stored")
    media_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    base = datetime.now(UTC) - timedelta(days=60)
    gen_rows, asset_rows = [], []
    for row in sorted(stored, key=lambda r: r["i"]):
        created = base + timedelta(minutes=row["i"])
        gen_id, asset_id = uuid.uuid4().hex, uuid.uuid4().hex
        gen_rows.append((gen_id, "image", "succeeded", IMAGE_MODEL, f"Study #{row['i']}: ochre and teal gradient",
                         '{"aspect_ratio":"1:1"}', 1200, 1290, 0.039, f"gen-bench-{row['i']}", IMAGE_MODEL, 1,
                         created, created, created + timedelta(seconds=9), created + timedelta(seconds=9)))
        asset_rows.append((asset_id, gen_id, "output", "image", row["mime"], row["bytes"], row["sha256"],
                           row["width"], row["height"], row["thumb_sha256"], 0, created + timedelta(seconds=9)))
    con = duckdb.connect(str(db_path))
    try:
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO generations (id, kind, status, model, prompt, params, prompt_tokens, completion_tokens, "
            "cost_usd, upstream_id, upstream_model, attempts, created_at, started_at, finished_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", gen_rows)
        con.executemany(
            "INSERT INTO assets (id, generation_id, role, kind, mime, bytes, sha256, width, height, thumb_sha256, "
            "position, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", asset_rows)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    rows_s = time.perf_counter() - t1
    info = {"images": count, "image_size": size, "media_seconds": media_s, "rows_seconds": rows_s,
            "thumbs": {r["thumb_sha256"] for r in stored}, "originals": {r["sha256"] for r in stored}}
    (data_dir / FIXTURE_MARK).write_text(json.dumps(
        {**info, "thumbs": sorted(info["thumbs"]), "originals": sorted(info["originals"])}))
    return info


def load_fixture(data_dir: Path) -> dict[str, Any] | None:
    mark = data_dir / FIXTURE_MARK
    if not mark.is_file():
        return None
    info = json.loads(mark.read_text())
    info["thumbs"], info["originals"] = set(info["thumbs"]), set(info["originals"])
    return info


# ---------------------------------------------------------------------------------------------- measuring


def timed_get(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return elapsed, response


def classify_assets(client: httpx.Client, html: str, fixture: dict[str, Any]) -> dict[str, Any]:
    """Fetch every asset URL on the page and say whether its bytes are a thumbnail or an original."""
    urls = list(dict.fromkeys(_ASSET_URL.findall(html)))
    kinds = {"thumbnail": 0, "original": 0, "unknown": 0}
    bytes_by_kind = {"thumbnail": 0, "original": 0, "unknown": 0}
    for url in urls:
        response = client.get(url.replace("&amp;", "&"))
        digest = hashlib.sha256(response.content).hexdigest()
        kind = "thumbnail" if digest in fixture["thumbs"] else "original" if digest in fixture["originals"] \
            else "unknown"
        kinds[kind] += 1
        bytes_by_kind[kind] += len(response.content)
    return {"asset_urls": len(urls), "img_tags": len(_IMG_TAG.findall(html)), "kinds": kinds,
            "bytes": bytes_by_kind, "sample_urls": urls[:3]}


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], runs=50)
    parser.add_argument("--images", type=int, default=5000, help="images in the fixture (default 5000)")
    parser.add_argument("--image-size", type=int, default=512, help="edge of each stored PNG in pixels")
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the fixture in this directory")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (default 3)")
    args = parser.parse_args()

    data_dir = args.data_dir or temp_dir("library")
    fixture = load_fixture(data_dir)
    if fixture is not None and fixture["images"] != args.images:
        raise SystemExit(f"{data_dir} holds a fixture of {fixture['images']} images; use another --data-dir")
    try:
        if fixture is None:
            log(f"fixture: storing {args.images} images in {data_dir}")
            fixture = build_fixture(data_dir, args.images, args.image_size)
        else:
            log(f"fixture: reusing {data_dir}")
        fake = start_fake()
        app = start_app(data_dir, app_env(data_dir, base_url=fake.base_url))
        try:
            with closing(app.ui_client()) as ui, app.api_client() as api:
                for _ in range(args.warmup):
                    timed_get(ui, "/library", {"kind": "image"})
                page_times, sizes = [], []
                html = ""
                for _ in range(args.runs):
                    elapsed, response = timed_get(ui, "/library", {"kind": "image"})
                    page_times.append(elapsed)
                    sizes.append(len(response.content))
                    html = response.text
                more = re.search(r'data-partial-url="([^"]+)"', html)
                partial_times = []
                if more:
                    partial_url = more.group(1).replace("&amp;", "&")
                    for _ in range(args.runs):
                        partial_times.append(timed_get(ui, partial_url)[0])
                # The backend call behind the page, with the page's own size (the number of tiles on it).
                tiles = max(1, len(_IMG_TAG.findall(html)))
                api_times = [timed_get(api, "/generations", {"kind": "image", "limit": str(tiles)})[0]
                             for _ in range(args.runs)]
                assets = classify_assets(ui, html, fixture)
        finally:
            stop_app(app)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    page = summarize([ms(t) for t in page_times])
    partial = summarize([ms(t) for t in partial_times])
    api_list = summarize([ms(t) for t in api_times])
    thumbs_only = assets["asset_urls"] > 0 and assets["kinds"]["original"] == 0 and assets["kinds"]["unknown"] == 0
    rows = [
        ["GET /library?kind=image (full page)", page["median"], page["p95"], page["min"], page["max"]],
        ["GET /library ... &partial=1&cursor= (Load more)", partial.get("median"), partial.get("p95"),
         partial.get("min"), partial.get("max")],
        [f"backend GET /api/v1/generations?kind=image&limit={tiles}", api_list["median"], api_list["p95"],
         api_list["min"], api_list["max"]],
    ]
    page_rows = [
        ["page bytes (HTML)", sizes[-1]],
        ["<img> tags", assets["img_tags"]],
        ["asset URLs referenced", assets["asset_urls"]],
        ["… served a thumbnail", assets["kinds"]["thumbnail"]],
        ["… served the full original", assets["kinds"]["original"]],
        ["… unrecognised bytes", assets["kinds"]["unknown"]],
        ["bytes the browser fetches for those images", sum(assets["bytes"].values())],
        ["example URL", (assets["sample_urls"] or ["-"])[0]],
    ]
    fixture_rows = [["images stored", fixture["images"]], ["image size (px)", fixture.get("image_size")]]
    if "media_seconds" in fixture:
        fixture_rows += [["MediaStore time (s)", fixture["media_seconds"]],
                         ["DuckDB insert time (s)", fixture["rows_seconds"]]]
    text = "\n\n".join([
        table("Fixture", ["item", "value"], fixture_rows),
        table(f"Library grid with {fixture['images']:,} images, {args.runs} requests each (ms)",
              ["request", "p50", "p95", "min", "max"], rows),
        table("What the grid page references", ["item", "value"], page_rows),
        table("Targets", ["target", "goal", "measured", "result"], [
            ["grid page, median", f"< {TARGET_PAGE_MS:g} ms", f"{page['median']:.1f} ms",
             verdict(page["median"] < TARGET_PAGE_MS)],
            ["thumbnails only", "0 originals", f"{assets['kinds']['original']} originals", verdict(thumbs_only)],
        ]),
    ])
    emit(args, {"benchmark": "library_grid", "runs": args.runs, "images": fixture["images"],
                "page_ms": page, "partial_ms": partial, "api_list_ms": api_list, "page_bytes": sizes[-1],
                "assets": assets,
                "fixture_seconds": {k: fixture.get(k) for k in ("media_seconds", "rows_seconds")},
                "targets": {"page_ms": page["median"], "page_met": page["median"] < TARGET_PAGE_MS,
                            "thumbnails_only": thumbs_only}}, text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
