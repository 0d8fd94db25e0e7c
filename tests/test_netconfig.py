"""Corporate networks: a real forward/CONNECT proxy and real TLS servers on loopback."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.net.hosts import is_loopback_host
from backend.net.netconfig import (
    NetworkConfigError,
    build_ssl_context,
    describe_network,
    httpx_options,
    redact_url,
    resolve_proxy,
)

# --- a tiny HTTP proxy: CONNECT tunnels and absolute-form forwarding --------------------------------


class _ProxyHandler(socketserver.BaseRequestHandler):
    """Resolves every host name to 127.0.0.1, so 'openrouter.test' reaches a loopback server."""

    server: _ProxyServer

    def handle(self) -> None:
        client = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        header_block, _, rest = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        with self.server.lock:
            self.server.requests.append((method, target))
        if method == "CONNECT":
            _host, _, port = target.rpartition(":")
            upstream = socket.create_connection(("127.0.0.1", int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            _pipe(client, upstream)
            return
        url = httpx.URL(target)
        upstream = socket.create_connection(("127.0.0.1", url.port or 80))
        headers = [h for h in lines[1:] if not h.lower().startswith(("connection:", "proxy-"))]
        path = url.raw_path.decode("ascii")
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in headers)
        upstream.sendall(request.encode("latin-1") + b"Connection: close\r\n\r\n" + rest)
        _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(timeout=10)
    b.close()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy() -> Iterator[_ProxyServer]:
    server = _ProxyServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# --- target servers -----------------------------------------------------------------------------------


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def http_target() -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler))


# --- a private CA and a server certificate ----------------------------------------------------------


def _make_pki_with_cryptography(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Atelier Test Corp Root CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openrouter.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("openrouter.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


def _make_pki_with_openssl(directory: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    cert_pem, key_pem, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=DNS:openrouter.test,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="ascii",
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Atelier Test Corp Root CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_pem),
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=openrouter.test",
        "-keyout",
        str(key_pem),
        "-out",
        str(csr),
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_pem),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(cert_pem),
    )
    return ca_pem, cert_pem, key_pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[Path, Path, Path]:
    directory = tmp_path_factory.mktemp("pki")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _make_pki_with_openssl(directory)
    return _make_pki_with_cryptography(directory)


@pytest.fixture
def tls_target(pki) -> Iterator[int]:
    _ca, cert, key = pki
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


# --- requests through the proxy ----------------------------------------------------------------------


def test_https_proxy_from_env_tunnels_to_a_tls_server_trusted_through_the_extra_ca(proxy, tls_target, pki):
    ca, _, _ = pki
    url = f"https://openrouter.test:{tls_target}/api/v1/models"
    env = {"HTTPS_PROXY": proxy.url}
    with httpx.Client(**httpx_options(url, ca_bundle=ca, env=env)) as client:
        response = client.get(url)
    assert response.status_code == 200
    assert response.json() == {"path": "/api/v1/models", "host": f"openrouter.test:{tls_target}"}
    assert proxy.requests == [("CONNECT", f"openrouter.test:{tls_target}")]


def test_http_request_via_a_non_loopback_name_is_forwarded_by_the_proxy(proxy, http_target):
    url = f"http://upstream.test:{http_target}/api/v1/key"
    proxy_url = resolve_proxy(url, policy_proxy=None, env={"ALL_PROXY": proxy.url})
    assert proxy_url == proxy.url
    with httpx.Client(proxy=proxy_url, trust_env=False) as client:
        response = client.get(url)
    assert response.json() == {"path": "/api/v1/key", "host": f"upstream.test:{http_target}"}
    assert proxy.requests == [("GET", url)]


def test_policy_proxy_wins_over_the_environment(proxy, http_target):
    url = f"http://upstream.test:{http_target}/models"
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    env = {"HTTP_PROXY": dead, "ALL_PROXY": dead, "HTTPS_PROXY": dead}
    proxy_url = resolve_proxy(url, policy_proxy=proxy.url, env=env)
    assert proxy_url == proxy.url
    with httpx.Client(proxy=proxy_url, trust_env=False) as client:
        assert client.get(url).status_code == 200
    assert len(proxy.requests) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.8.9.10", "[::1]"])
def test_loopback_is_always_direct(proxy, http_target, host):
    env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "ALL_PROXY": proxy.url}
    url = f"http://{host}:{http_target}/health"
    assert resolve_proxy(url, policy_proxy=proxy.url, env=env) is None
    assert resolve_proxy(f"https://{host}/x", policy_proxy=proxy.url, env=env) is None
    if host in ("127.0.0.1", "localhost"):
        with httpx.Client(
            proxy=resolve_proxy(url, policy_proxy=proxy.url, env=env), trust_env=False
        ) as client:
            assert client.get(url).status_code == 200
        assert proxy.requests == []


# --- certificate trust ---------------------------------------------------------------------------------


def test_private_ca_is_trusted_only_when_the_bundle_is_given(tls_target, pki):
    ca, _, _ = pki
    url = f"https://127.0.0.1:{tls_target}/"
    with (
        httpx.Client(verify=build_ssl_context(), trust_env=False) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(url)
    with httpx.Client(verify=build_ssl_context(ca), trust_env=False) as client:
        assert client.get(url).status_code == 200
    # Several bundles (policy + user) are all loaded.
    with httpx.Client(verify=build_ssl_context([ca, None]), trust_env=False) as client:
        assert client.get(url).status_code == 200


def test_ssl_context_always_verifies(pki):
    ca, _, _ = pki
    for context in (build_ssl_context(), build_ssl_context(ca)):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_hostname_is_checked_even_with_the_extra_ca(tls_target, pki):
    ca, _, _ = pki
    # The certificate names openrouter.test and 127.0.0.1, not localhost.
    with (
        httpx.Client(verify=build_ssl_context(ca), trust_env=False) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|hostname"),
    ):
        client.get(f"https://localhost:{tls_target}/")


def test_bad_ca_bundle_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n", encoding="ascii")
    with pytest.raises(NetworkConfigError, match=r"Extra CA bundle .*junk.pem cannot be loaded"):
        build_ssl_context(junk)
    with pytest.raises(NetworkConfigError, match="cannot be loaded"):
        build_ssl_context(tmp_path / "missing.pem")


# --- proxy selection rules ----------------------------------------------------------------------------

URL = "https://openrouter.ai/api/v1/models"
PROXY = "http://proxy.corp.example:3128"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": PROXY}, PROXY),
        ({"https_proxy": PROXY}, PROXY),
        ({"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, PROXY),
        ({"ALL_PROXY": PROXY}, PROXY),
        ({"all_proxy": PROXY}, PROXY),
        ({"HTTPS_PROXY": PROXY, "ALL_PROXY": "http://other:1"}, PROXY),
        ({"HTTP_PROXY": PROXY}, None),  # http_proxy is for http:// targets only
        ({"HTTPS_PROXY": "proxy.corp.example:3128"}, PROXY),  # scheme-less, as curl accepts
        (
            {"HTTPS_PROXY": "socks5://proxy:1080"},
            None,
        ),  # unusable without extras: ignored, reported by doctor
        ({"HTTPS_PROXY": "socks5://proxy:1080", "ALL_PROXY": PROXY}, PROXY),
        ({"HTTPS_PROXY": "  "}, None),
    ],
)
def test_environment_proxy_selection(env, expected):
    assert resolve_proxy(URL, policy_proxy=None, env=env) == expected


def test_http_targets_use_http_proxy():
    assert (
        resolve_proxy("http://gateway.corp.example/api", policy_proxy=None, env={"HTTP_PROXY": PROXY})
        == PROXY
    )


def test_invalid_policy_proxy_is_an_error():
    with pytest.raises(NetworkConfigError) as caught:
        resolve_proxy(URL, policy_proxy="socks5://bob:pw123@proxy:1080", env={})
    assert "pw123" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "no_proxy", "direct"),
    [
        ("https://openrouter.ai/api/v1", "*", True),
        ("https://openrouter.ai/api/v1", "openrouter.ai", True),
        ("https://openrouter.ai/api/v1", "OpenRouter.AI", True),
        ("https://api.openrouter.ai/v1", "openrouter.ai", True),
        ("https://api.openrouter.ai/v1", ".openrouter.ai", True),
        ("https://api.openrouter.ai/v1", "*.openrouter.ai", True),
        ("https://openrouter.ai/api/v1", ".openrouter.ai", True),
        ("https://notopenrouter.ai/api/v1", "openrouter.ai", False),
        ("https://openrouter.ai.evil.example/", "openrouter.ai", False),
        ("https://example.com/", "openrouter.ai", False),
        ("https://example.com/", "foo.example, ,example.com", True),
        ("https://example.com/", "foo.example example.com", True),
        ("https://example.com/", "example.com:443", True),
        ("https://example.com/", "example.com:8443", False),
        ("https://example.com:8443/", "example.com:8443", True),
        ("https://10.1.2.3/", "10.0.0.0/8", True),
        ("https://11.1.2.3/", "10.0.0.0/8", False),
        ("https://10.1.2.3/", "10.1.2.3", True),
        ("https://10.1.2.3/", "10.1.2.4", False),
        ("https://[2001:db8::5]/", "2001:db8::/32", True),
        ("https://[2001:db8::5]/", "[2001:db8::5]", True),
        ("https://[2001:db8::5]/", "2001:db8::5", True),
        ("https://[2001:db9::5]/", "2001:db8::/32", False),
        ("https://10.1.2.3/", "not-a-cidr/99", False),
    ],
)
def test_no_proxy_matrix(url, no_proxy, direct):
    env = {"HTTPS_PROXY": PROXY, "NO_PROXY": no_proxy}
    assert (resolve_proxy(url, policy_proxy=None, env=env) is None) is direct
    # NO_PROXY applies to the policy proxy too, and the lowercase spelling works.
    assert (resolve_proxy(url, policy_proxy=PROXY, env={"no_proxy": no_proxy}) is None) is direct


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("localhost.evil.example", False),
        ("openrouter.ai", False),
    ],
)
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


# --- diagnostics ---------------------------------------------------------------------------------------


def test_redact_url():
    assert redact_url("http://alice:s3cret@proxy.corp:3128") == "http://***@proxy.corp:3128"
    assert redact_url("http://token@proxy.corp:3128/") == "http://***@proxy.corp:3128/"
    assert redact_url("http://proxy.corp:3128") == "http://proxy.corp:3128"


def test_describe_network_redacts_credentials_and_reports_sources(pki):
    ca, _, _ = pki
    env = {
        "HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128",
        "ALL_PROXY": "socks5://bob:hunter2@s:1080",
        "NO_PROXY": "intranet.example",
    }
    info = describe_network(URL, ca_bundle=ca, env=env)
    text = json.dumps(info)
    for secret in ("s3cret", "alice", "hunter2", "bob"):
        assert secret not in text
    assert info["proxy"] == "http://***@proxy.corp:3128"
    assert info["proxy_source"] == "HTTPS_PROXY"
    assert info["ignored_proxy_settings"] == ["ALL_PROXY=socks5://***@s:1080"]
    assert info["no_proxy"] == "intranet.example"
    assert info["tls_verification"] is True
    assert "truststore" in info["trust_store"]
    assert info["extra_ca"] == [{"path": str(ca), "certificates": 1, "readable": True}]
    assert info["direct_reason"] is None

    policy_info = describe_network(URL, policy_proxy="http://u:p4ss@gw.corp:8080", env=env)
    assert policy_info["proxy_source"] == "policy"
    assert "p4ss" not in json.dumps(policy_info)

    assert describe_network("http://127.0.0.1:8000/api/v1", env=env)["direct_reason"] == "loopback target"
    assert describe_network("https://intranet.example/api", env=env)["direct_reason"] == "matched NO_PROXY"
    assert describe_network(URL, env={})["direct_reason"] == "no proxy configured"
