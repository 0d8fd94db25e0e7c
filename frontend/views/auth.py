"""Login with the launch token, and the checks every request passes before any view runs.

Order matters: the Host check comes first (a DNS-rebound name must learn nothing, not even whether
it is logged in), then the cross-site write check, then the session cookie.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from frontend.security import (
    SECURITY_HEADERS,
    is_allowed_host,
    is_cross_site_write,
    secrets_equal,
)
from frontend.web import wants_json

bp = Blueprint("auth", __name__)

#: Endpoints reachable without the session cookie.
_PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.favicon", "oauth.callback"})


def current_port() -> int:
    getter = current_app.extensions.get("atelier_port_getter")
    if getter is not None:
        return int(getter())
    # Without a getter, trust the port the server socket reports (werkzeug fills SERVER_PORT from it).
    return int(request.environ.get("SERVER_PORT") or 0)


def is_logged_in() -> bool:
    """Whether the request carries this launch's session cookie."""
    cookie = request.cookies.get(current_app.config["ATELIER_SESSION_COOKIE"])
    return secrets_equal(cookie, current_app.config["ATELIER_SESSION_VALUE"])


def _plain(status: int, message: str) -> Response:
    response = make_response(message + "\n", status)
    response.mimetype = "text/plain"
    return response


@bp.before_app_request
def guard() -> Response | None:
    """Reject foreign hosts, cross-site writes and requests without the session cookie."""
    port = current_port()
    if not is_allowed_host(request.headers.get("Host"), port):
        return _plain(400, "Bad Host header.")
    if is_cross_site_write(
        request.method, request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), port
    ):
        return _plain(403, "Cross-site request refused.")
    if request.endpoint in _PUBLIC_ENDPOINTS or is_logged_in():
        return None
    if request.method == "GET" and not wants_json() and not request.path.startswith("/static/"):
        return make_response(render_template("errors/unauthorized.html", bad_token=False), 401)
    return make_response(
        jsonify({"error": {"code": "not_logged_in", "message": "Open Atelier from the app to sign in."}}),
        401,
    )


@bp.after_app_request
def security_headers(response: Response) -> Response:
    """Strict headers on every response; the CSP forbids inline code and every remote load."""
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value
    for name in {key for key, _ in response.headers.items() if key.lower().startswith("access-control-")}:
        del response.headers[name]
    if response.mimetype in {"text/html", "application/json", "text/event-stream"}:
        # Pages show the user's prompts and outputs: keep them out of any cache.
        response.headers["Cache-Control"] = "no-store"
    return response


_CONTINUE_PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8">'
    '<meta http-equiv="refresh" content="0;url={url}"><title>Opening Atelier…</title></head>'
    '<body><p><a href="{url}">Open Atelier</a></p></body></html>\n'
)


@bp.get("/login")
def login() -> Response:
    """``/login?token=<launch token>``: set the session cookie and go to the Studio."""
    token = request.args.get("token", "")
    if not secrets_equal(token, current_app.config["ATELIER_TOKEN"]):
        return make_response(render_template("errors/unauthorized.html", bad_token=True), 401)
    studio = url_for("studio.index")
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        # Opened from another site or a local file (the page the app hands the system browser, so the token
        # is never on a command line). A browser withholds SameSite=Strict cookies from every request of a
        # navigation another site started, redirects included: continue from a page of our own instead.
        response = make_response(_CONTINUE_PAGE.format(url=studio), 200)
        response.mimetype = "text/html"
    else:
        response = redirect(studio)
    response.set_cookie(
        current_app.config["ATELIER_SESSION_COOKIE"],
        current_app.config["ATELIER_SESSION_VALUE"],
        httponly=True,
        samesite="Strict",
        path="/",
        secure=False,  # loopback http; the cookie never leaves this machine
    )
    return response


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The app icon (public so the sign-in page can show it)."""
    return send_from_directory(current_app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml")
