"""The FastAPI application factory."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import __version__
from backend.core.errors import AtelierError
from backend.core.files import is_storage_failure
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.core.sizes import format_size
from backend.db.store import Store
from backend.net.hosts import is_allowed_host, tokens_equal

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/api/v1/health"})
# Routes that stream a large body to disk and enforce their own limit (the import of an export zip).
STREAMED_BODY_PATHS = frozenset({"/api/v1/imports"})


@dataclass
class Shell:
    """Callbacks the desktop shell gives the backend (all optional)."""

    show_window: Callable[[], bool] | None = None
    notices: list[str] = field(default_factory=list)


class _Guard:
    """Pure ASGI middleware: Host allow-list (exactly one Host header), bearer launch token, request size cap.

    Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched.
    """

    def __init__(self, app: Any, *, token: str, max_body: int):
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        server = scope.get("server") or (None, None)
        if not (scope.get("raw_path") or b"/").startswith(b"/"):
            # Absolute-form target (``GET http://other.host/path``): the host it names is never checked.
            await _deny(send, 400, "bad_request", "Only origin-form request targets (/path) are accepted.")
            return
        hosts = [v for k, v in scope.get("headers", []) if k.lower() == b"host"]
        if len(hosts) != 1 or not is_allowed_host(hosts[0].decode("latin-1"), server[1]):
            await _deny(send, 403, "forbidden_host", "Requests must address this app by 127.0.0.1 or localhost.")
            return
        if scope["path"] not in PUBLIC_PATHS:
            auth = headers.get("authorization", "")
            scheme, _, supplied = auth.partition(" ")
            if scheme.lower() != "bearer" or not tokens_equal(supplied.strip(), self.token):
                await _deny(send, 401, "unauthorized", "A valid launch token is required.",
                            extra_headers=[(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length")
        if scope["path"] in STREAMED_BODY_PATHS:
            await self.app(scope, receive, send)
            return
        if length is not None:
            if not length.isdigit():
                await _deny(send, 400, "bad_request", "Invalid Content-Length.")
                return
            if int(length) > self.max_body:
                await _deny(send, 413, "payload_too_large",
                            f"The request body is larger than {format_size(self.max_body)}.")
                return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A chunked body: read it here, within the cap, then hand it to the app in one piece.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await _deny(send, 413, "payload_too_large",
                                f"The request body is larger than {format_size(self.max_body)}.")
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def _deny(send: Callable, status: int, code: str, message: str, extra_headers: list | None = None) -> None:
    import json

    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: Settings,
    *,
    token: str,
    shell: Shell | None = None,
    store: Store | None = None,
    policy: Any = None,
    services: Callable[[FastAPI], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
    openrouter_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the API. Opens (and migrates) the store unless one is given.

    ``services`` is an optional async hook run at start-up that returns an async shutdown hook; the
    generation services (OpenRouter client, outbox worker) are installed through :func:`install_services`.
    ``openrouter_transport`` replaces the network under the OpenRouter client (tests pass an
    ``httpx.MockTransport``).
    """
    settings.ensure_dirs()
    store = store or Store.open(settings.db_path, backups_dir=settings.backups_dir)
    shell = shell or Shell()
    if store.recovered_from is not None:
        shell.notices.append(_recovery_notice(store, settings))
    if store.wal_kept is not None:
        shell.notices.append(
            "The last changes before Atelier stopped could not be read back (their journal file was damaged), so "
            f"the library opened without them. The journal was kept aside as {store.wal_kept.name}."
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        shutdown: list[Callable[[], Awaitable[None]]] = []
        from backend.composition import install_services

        shutdown.append(await install_services(app))
        if services is not None:
            shutdown.append(await services(app))
        try:
            yield
        finally:
            for hook in reversed(shutdown):
                try:
                    await hook()
                except Exception:  # shutdown must go on
                    log.exception("shutdown hook failed")
            store.close()

    app = FastAPI(
        title="Atelier local API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # its Swagger page loads from a CDN and needs the token: the UI serves /api-docs
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token = token
    app.state.store = store
    app.state.shell = shell
    app.state.policy = policy
    app.state.openrouter_transport = openrouter_transport
    app.state.preferences = Preferences(store, policy, defaults={"retry_unknown_text": settings.retry_unknown_text})
    _install_error_handlers(app)

    from backend.api import system

    app.include_router(system.router, prefix="/api/v1")
    from backend.api import register_routers

    register_routers(app)
    app.add_middleware(_Guard, token=token, max_body=settings.max_request_bytes)
    _document_errors(app)
    return app


# Error answers every guarded operation can give: the guard (bad Content-Length 400, no token 401, foreign Host
# 403, body over the cap 413), validation (422), a full or read-only disk (507) and a bug (500).
_COMMON_ERRORS = {
    400: "Bad request (for example an invalid Content-Length).",
    401: "The launch token is missing or wrong.",
    403: "Foreign Host header, or refused by machine policy.",
    413: "The request body is larger than the API accepts.",
    422: "The request is malformed or a value is out of range.",
    500: "Unexpected error inside Atelier (details in the log file).",
    507: "The disk refused a write (full, read-only or no permission); nothing saved was lost.",
}
# Further answers of particular operations, keyed by (method, path template).
_OPERATION_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/api/v1/generations"): {
        402: "This month's budget is spent.", 404: "A reference asset or the template does not exist.",
        429: "The outbox is full.", 502: "OpenRouter did not answer; the generation stays queued."},
    ("post", "/api/v1/batches"): {
        402: "This month's budget is spent.", 404: "The template does not exist.",
        429: "The outbox cannot take this many more items."},
    ("post", "/api/v1/batches/{batch_id}/resume"): {409: "The batch was cancelled."},
    ("post", "/api/v1/batches/{batch_id}/pause"): {409: "The batch was cancelled."},
    ("post", "/api/v1/assets"): {415: "Not a PNG, JPEG, WebP or GIF image."},
    ("post", "/api/v1/generations/{gen_id}/retry"): {
        402: "This month's budget is spent; the generation failed and nothing was sent.",
        409: "The generation cannot be retried in its status."},
    ("post", "/api/v1/generations/{gen_id}/cancel"): {409: "The generation has already finished."},
    ("put", "/api/v1/imports/uploads/{upload_id}"): {
        409: "The chunk does not start where the upload ends (`received` says where it does)."},
    ("get", "/api/v1/assets/{asset_id}"): {304: "Not modified (If-None-Match).",
                                           416: "The requested range is outside the file."},
}


def _document_errors(app: FastAPI) -> None:
    """Describe the error answers in the OpenAPI document: the ``{"error": {...}}`` body and its status codes.

    FastAPI documents only the success answer and its own 422 shape; clients (and schema-driven tests) need the
    real error body and every status an operation can give.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "generation": {"type": "object", "description": "The generation the error is about, if any."},
            },
        }
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if method not in ("get", "put", "post", "patch", "delete"):
                    continue
                responses = operation.setdefault("responses", {})
                if path in PUBLIC_PATHS:
                    responses.pop("422", None)
                    continue
                codes = dict(_COMMON_ERRORS)
                if "{" in path:
                    codes[404] = "No such resource."
                codes.update(_OPERATION_ERRORS.get((method, path), {}))
                for code, description in codes.items():
                    entry = responses.setdefault(str(code), {"description": description})
                    if code == 422:
                        entry["description"] = description
                    if code not in (304, 416):  # those two have no body
                        entry["content"] = error_ref
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the OpenAPI document lists for ``path``.

    FastAPI makes one route per method, so Starlette's own ``Allow`` header names only the first match.
    """
    methods: set[str] = set()
    for template, item in app.openapi().get("paths", {}).items():
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in item if m in ("get", "put", "post", "patch", "delete")}
    return sorted(methods)


#: Plain words for the validation errors people meet (a title too long, an empty prompt, a number out of range);
#: pydantic's own message otherwise.
_PROBLEMS = {
    "missing": "is required",
    "string_too_long": "is too long: at most {max_length} characters",
    "string_too_short": "is too short: at least {min_length} characters",
    "too_long": "has too many items: at most {max_length}",
    "too_short": "has too few items: at least {min_length}",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "extra_forbidden": "is not a field this request takes",
}


def _problem(err: dict[str, Any]) -> str:
    """What is wrong with one field, in words a person reads."""
    template = _PROBLEMS.get(str(err.get("type")))
    ctx = err.get("ctx") or {}
    if template is None:
        return str(err.get("msg", "invalid"))
    if err.get("type") == "string_too_short" and ctx.get("min_length") == 1:
        return "cannot be empty"
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return str(err.get("msg", "invalid"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtelierError)
    async def atelier_error(_: Request, exc: AtelierError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details, sentences = [], []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problem = _problem(err)
            details.append({"field": field, "problem": problem})
            # "title is too long: at most 300 characters"; pydantic's own words after a colon.
            joint = " " if str(err.get("type")) in _PROBLEMS else ": "
            sentences.append(f"{field or 'the body'}{joint}{problem}")
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            message = "The request body is not valid JSON."
        else:
            message = "; ".join(sentences) or "Invalid request."
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": message, "details": details}}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when the JSON parser itself fails (e.g. nesting deeper than Python's recursion
            # limit): malformed JSON like any other, so 422 with the same code.
            return JSONResponse({"error": {"code": "invalid_request", "message": "The request body could not be "
                                           "read as JSON (it may be nested too deeply)."}}, status_code=422)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return JSONResponse(
            {"error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}},
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(duckdb.Error)
    async def database_error(_: Request, exc: duckdb.Error) -> JSONResponse:
        # DuckDB reports a full or read-only disk as an IOException, or, when the commit's WAL write fails, as
        # a TransactionException: both are storage problems for the user, not bugs.
        if is_storage_failure(exc):
            log.error("database write failed: %s", exc)
            return JSONResponse(
                {"error": {"code": "storage_error", "message": "Atelier could not write to its library on disk "
                           "(the disk may be full or read-only). Nothing already saved was lost; free some space "
                           "and try again."}},
                status_code=507,
            )
        return await unexpected(_, exc)

    @app.exception_handler(OSError)
    async def os_error(_: Request, exc: OSError) -> JSONResponse:
        if is_storage_failure(exc):
            log.error("file write failed: %s", exc.strerror)
            return JSONResponse(
                {"error": {"code": "storage_error", "message": "Atelier could not write a file (disk full or "
                           "no permission). Nothing already saved was lost; free some space and try again."}},
                status_code=507,
            )
        log.exception("unexpected OS error")
        return JSONResponse({"error": {"code": "internal_error", "message": "Unexpected error."}}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {"error": {"code": "internal_error", "message": "Something went wrong inside Atelier. Details are in "
                       "the log file; nothing you saved was lost."}},
            status_code=500,
        )


def _recovery_notice(store: Store, settings: Settings) -> str:
    """What the user is told after a damaged library was set aside: what was saved, and the newest backup."""
    from backend.data.backups import list_backups
    from backend.db.salvage import describe

    salvaged = store.salvaged
    saved = describe(salvaged) if salvaged is not None else "nothing of it could be read back"
    started = "a new library was started" if salvaged is not None and salvaged.rows else \
        "a new, empty library was started"
    try:
        newest = list_backups(settings.backups_dir)[:1]
    except OSError:
        newest = []
    if newest:
        backup = (f"The newest backup, {newest[0]['id']} ({newest[0]['items']} items, made {newest[0]['created_at']}), "
                  "can be restored from Settings → Your data (or with `atelier restore "
                  f"{newest[0]['id']}`); backups are in the 'backups' folder of the data directory.")
    else:
        backup = "There is no backup to restore; backups are in the 'backups' folder of the data directory."
    return (f"The library database could not be read and was kept aside as {store.recovered_from.name}; "
            f"{started} and {saved}. {backup}")
