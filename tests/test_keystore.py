"""KeyStore: precedence, the private-file fallback, keychain backends, failures, and never leaking the key.

Keychain tests use small real ``KeyringBackend`` subclasses defined here (selected with ``module:Class``), so
the OS keychain is never touched.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import traceback
from pathlib import Path
from typing import ClassVar

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties

from backend.keys.keystore import KeyStatus, KeyStore, KeyStoreError, validate_key

SENTINEL = "sk-or-v1-SENTINEL0123456789abcdefSENTINEL0123456789abcdefWXYZ"
OTHER = "sk-or-v1-other00000000000000000000000000000000000000000000009876"
POSIX = os.name == "posix"


class DictKeyring(KeyringBackend):
    """A working keychain that keeps passwords in a class-level dict."""

    priority = 1  # type: ignore[assignment]
    storage: ClassVar[dict[tuple[str, str], str]] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.storage.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.storage[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.storage[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("not found") from None


class LockedKeyring(DictKeyring):
    """A keychain whose collection is locked."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("collection is locked")


class LeakyKeyring(DictKeyring):
    """A keychain whose error text repeats the password it was given."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"cannot store {password!r} for {username}")


class UnavailableKeyring(DictKeyring):
    """A keychain whose viability probe fails, like Secret Service without a D-Bus session."""

    @properties.classproperty
    def priority(cls) -> int:
        raise RuntimeError("Unable to initialize SecretService: no D-Bus session")


class NullishKeyring(DictKeyring):
    """A keychain that declares itself unsuitable (like keyring's ``fail`` and ``null`` backends)."""

    priority = 0  # type: ignore[assignment]


MODULE = __name__


def spec(cls: type) -> str:
    return f"{MODULE}:{cls.__name__}"


@pytest.fixture(autouse=True)
def _clean_keyring() -> None:
    DictKeyring.storage.clear()


def make(tmp_path: Path, **kwargs: object) -> KeyStore:
    kwargs.setdefault("env", {})
    return KeyStore(tmp_path / "data", **kwargs)  # type: ignore[arg-type]


def key_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "secrets" / "openrouter.key"


def assert_no_key(text: str, *keys: str) -> None:
    for key in keys or (SENTINEL,):
        assert key not in text
        # Nor a large chunk of it.
        assert key[8:40] not in text


# ------------------------------------------------------------------ file fallback


def test_file_backend_stores_key_in_private_file(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file")
    assert store.get() is None
    assert store.status() == KeyStatus(
        configured=False,
        source=None,
        hint=None,
        storage_note=(
            "No system keychain was found, so a new key will be stored in a private file"
            f" ({key_file(tmp_path)}, readable only by you)."
        ),
    )

    status = store.set(SENTINEL)

    assert status.configured and status.source == "file"
    assert status.hint == "…WXYZ"
    assert status.storage_note == (
        "No system keychain was found, so the key is stored in a private file"
        f" ({key_file(tmp_path)}, readable only by you)."
    )
    assert store.get() == SENTINEL
    assert key_file(tmp_path).read_text() == SENTINEL + "\n"
    assert store.backend_name == "file"
    # A fresh instance (next launch) finds it.
    assert make(tmp_path, backend="file").get() == SENTINEL


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_key_file_is_0600_and_folder_0700_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make(tmp_path, backend="file").set(SENTINEL)
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file(tmp_path).parent.stat().st_mode) == 0o700


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_existing_loose_folder_and_file_are_tightened(tmp_path: Path) -> None:
    folder = key_file(tmp_path).parent
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    key_file(tmp_path).write_text(OTHER)
    os.chmod(key_file(tmp_path), 0o644)
    store = make(tmp_path, backend="file")

    assert store.get() == OTHER
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600

    store.set(SENTINEL)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600


def test_set_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file")
    store.set(OTHER)
    store.set(SENTINEL)
    assert store.get() == SENTINEL
    assert sorted(p.name for p in key_file(tmp_path).parent.iterdir()) == ["openrouter.key"]


def test_delete_removes_file(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file")
    store.set(SENTINEL)
    status = store.delete()
    assert not key_file(tmp_path).exists()
    assert status.configured is False and status.source is None
    assert store.get() is None
    # Deleting again is harmless.
    assert store.delete().configured is False


# ------------------------------------------------------------------ failures leave the old key intact


def _enospc(*args: object, **kwargs: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_keeps_previous_key_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make(tmp_path, backend="file")
    store.set(OTHER)
    monkeypatch.setattr(os, "write", _enospc)

    with pytest.raises(KeyStoreError) as info:
        store.set(SENTINEL)

    monkeypatch.undo()
    assert info.value.code == "disk_full"
    assert "disk is full" in str(info.value) and "Free some disk space" in str(info.value)
    assert store.get() == OTHER
    assert key_file(tmp_path).read_text() == OTHER + "\n"
    assert sorted(p.name for p in key_file(tmp_path).parent.iterdir()) == ["openrouter.key"]
    assert_no_key(str(info.value) + repr(info.value))
    assert_no_key("".join(traceback.format_exception(info.value)))


def test_permission_error_keeps_previous_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make(tmp_path, backend="file")
    store.set(OTHER)

    def denied(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(KeyStoreError) as info:
        store.set(SENTINEL)
    monkeypatch.undo()

    assert info.value.code == "permission"
    assert "Permission denied" in str(info.value) and str(key_file(tmp_path)) in str(info.value)
    assert store.get() == OTHER
    assert sorted(p.name for p in key_file(tmp_path).parent.iterdir()) == ["openrouter.key"]


@pytest.mark.skipif(not POSIX or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_folder_keeps_previous_key(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file")
    store.set(OTHER)
    folder = key_file(tmp_path).parent
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(KeyStoreError) as info:
            store.set(SENTINEL)
    finally:
        os.chmod(folder, 0o700)
    assert info.value.code == "permission"
    assert store.get() == OTHER


# ------------------------------------------------------------------ precedence and read-only sources


def test_precedence_policy_then_env_then_keyring_then_file(tmp_path: Path) -> None:
    key_file(tmp_path).parent.mkdir(parents=True)
    key_file(tmp_path).write_text("file-key-000000000001\n")
    DictKeyring.storage[("Atelier", "openrouter")] = "ring-key-000000000002"

    assert make(tmp_path, backend="file").get() == "file-key-000000000001"
    assert make(tmp_path, backend=spec(DictKeyring)).get() == "ring-key-000000000002"
    env = {"OPENROUTER_API_KEY": " env-key-000000000003\n"}
    assert make(tmp_path, backend=spec(DictKeyring), env=env).get() == "env-key-000000000003"
    with_policy = make(tmp_path, backend=spec(DictKeyring), env=env, policy_key="policy-key-00000004")
    assert with_policy.get() == "policy-key-00000004"
    assert with_policy.status().source == "policy"
    assert with_policy.status().hint == "…0004"
    # An empty variable counts as unset.
    assert make(tmp_path, backend="file", env={"OPENROUTER_API_KEY": "  "}).get() == "file-key-000000000001"


def test_env_key_is_read_only(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file", env={"OPENROUTER_API_KEY": SENTINEL})
    status = store.status()
    assert (status.configured, status.source, status.hint) == (True, "env", "…WXYZ")
    assert "OPENROUTER_API_KEY" in (status.storage_note or "")

    with pytest.raises(KeyStoreError) as info:
        store.set(OTHER)
    assert info.value.code == "read_only"
    assert "OPENROUTER_API_KEY" in str(info.value)
    assert not key_file(tmp_path).exists()
    assert_no_key(str(info.value))


def test_delete_with_env_key_removes_saved_key_and_says_env_stays(tmp_path: Path) -> None:
    make(tmp_path, backend="file").set(OTHER)
    store = make(tmp_path, backend="file", env={"OPENROUTER_API_KEY": SENTINEL})
    status = store.delete()
    assert not key_file(tmp_path).exists()
    assert status.configured and status.source == "env"
    assert "still in use" in (status.storage_note or "")
    assert store.get() == SENTINEL


def test_policy_key_is_read_only_and_survives_delete(tmp_path: Path) -> None:
    store = make(tmp_path, backend=spec(DictKeyring), policy_key=SENTINEL)
    with pytest.raises(KeyStoreError) as info:
        store.set(OTHER)
    assert info.value.code == "read_only"
    assert "policy" in str(info.value)
    assert DictKeyring.storage == {}
    status = store.delete()
    assert status.source == "policy" and "policy" in (status.storage_note or "")
    assert store.get() == SENTINEL


# ------------------------------------------------------------------ keychain backends


def test_keyring_backend_stores_in_keychain_not_file(tmp_path: Path) -> None:
    store = make(tmp_path, backend=spec(DictKeyring), service="AtelierTest", username="me")
    assert store.backend_name == DictKeyring.name  # not a known OS backend: the keyring's own name
    assert "system keychain" in (store.status().storage_note or "")

    status = store.set(SENTINEL)

    assert DictKeyring.storage == {("AtelierTest", "me"): SENTINEL}
    assert not key_file(tmp_path).exists()
    assert (status.source, status.hint) == ("keyring", "…WXYZ")
    assert "system keychain" in (status.storage_note or "")
    assert store.get() == SENTINEL

    status = store.delete()
    assert DictKeyring.storage == {}
    assert status.configured is False
    assert store.delete().configured is False  # nothing left to delete: not an error


def test_keyring_set_removes_older_file_key(tmp_path: Path) -> None:
    make(tmp_path, backend="file").set(OTHER)
    store = make(tmp_path, backend=spec(DictKeyring))
    assert store.status().source == "file"  # saved before the keychain existed: still found
    store.set(SENTINEL)
    assert not key_file(tmp_path).exists()
    assert store.get() == SENTINEL


def test_delete_with_keyring_removes_keychain_and_file(tmp_path: Path) -> None:
    make(tmp_path, backend="file").set(OTHER)
    DictKeyring.storage[("Atelier", "openrouter")] = SENTINEL
    store = make(tmp_path, backend=spec(DictKeyring))
    store.delete()
    assert DictKeyring.storage == {}
    assert not key_file(tmp_path).exists()
    assert store.get() is None


@pytest.mark.parametrize("cls", [UnavailableKeyring, NullishKeyring])
def test_unusable_keyring_falls_back_to_file(tmp_path: Path, cls: type) -> None:
    store = make(tmp_path, backend=spec(cls))
    assert store.backend_name == "file"
    note = store.status().storage_note or ""
    assert "No system keychain was found" in note and cls.__name__ in note
    store.set(SENTINEL)
    assert key_file(tmp_path).read_text().strip() == SENTINEL
    assert DictKeyring.storage == {}


def test_missing_backend_module_falls_back_to_file(tmp_path: Path) -> None:
    store = make(tmp_path, backend="no_such_module_atelier:Keyring")
    assert store.backend_name == "file"
    assert "could not be loaded" in (store.status().storage_note or "")


def test_non_keyring_class_falls_back_to_file(tmp_path: Path) -> None:
    store = make(tmp_path, backend="pathlib:Path")
    assert store.backend_name == "file"
    assert "not a keyring backend" in (store.status().storage_note or "")


@pytest.mark.parametrize("bad", ["keychain", "module", "a:b:c", "1abc:Class", "mod:"])
def test_malformed_backend_setting_is_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="Unknown key storage backend"):
        make(tmp_path, backend=bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Secret Service is the Linux keychain")
def test_auto_without_secret_service_falls_back_to_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No session bus: the Secret Service probe must fail (and the real keychain is never reached).
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-runtime"))
    store = make(tmp_path)
    assert store.backend_name == "file"
    status = store.set(SENTINEL)
    assert status.source == "file"
    assert status.storage_note == (
        "No system keychain was found, so the key is stored in a private file"
        f" ({key_file(tmp_path)}, readable only by you)."
    )


def test_locked_keychain_gives_clear_errors(tmp_path: Path) -> None:
    store = make(tmp_path, backend=spec(LockedKeyring))
    with pytest.raises(KeyStoreError) as info:
        store.get()
    assert info.value.code == "keyring_locked"
    assert "locked" in str(info.value) and "Unlock" in str(info.value)

    status = store.status()  # never raises: the problem is the note
    assert status.configured is False and "locked" in (status.storage_note or "")

    with pytest.raises(KeyStoreError) as info:
        store.set(SENTINEL)
    assert info.value.code == "keyring_locked"
    assert not key_file(tmp_path).exists()  # no silent downgrade to a file
    assert_no_key(str(info.value) + repr(info.value))


def test_keychain_error_text_is_scrubbed_of_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = make(tmp_path, backend=spec(LeakyKeyring))
    with pytest.raises(KeyStoreError) as info:
        store.set(SENTINEL)
    assert info.value.code == "keyring_error"
    assert "[redacted]" in str(info.value)
    assert_no_key(str(info.value) + repr(info.value))
    assert_no_key("".join(traceback.format_exception(info.value)))
    assert_no_key(caplog.text)


# ------------------------------------------------------------------ validation and leaks


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "\n",
        "short",
        "sk-or v1-abcdefgh",
        "sk-or-v1-abc\ndefgh",
        "sk-or-v1-abc\tdef",
        "x" * 513,
        "sk-or-v1-ключ12345",
        "sk-or-v1-abc\x00defgh",
    ],
)
def test_set_rejects_malformed_keys(tmp_path: Path, bad: str) -> None:
    store = make(tmp_path, backend="file")
    with pytest.raises(KeyStoreError) as info:
        store.set(bad)
    assert info.value.code == "invalid_key"
    if bad.strip():
        assert bad.strip() not in str(info.value)
    assert not key_file(tmp_path).exists()


def test_set_forgives_surrounding_whitespace(tmp_path: Path) -> None:
    store = make(tmp_path, backend="file")
    store.set(f"  {SENTINEL}\r\n")
    assert store.get() == SENTINEL
    assert validate_key(SENTINEL) == SENTINEL


def test_key_never_in_repr_logs_or_status(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = make(tmp_path, backend="file", policy_key=None)
    store.set(SENTINEL)
    policy_store = make(tmp_path, backend=spec(DictKeyring), policy_key=SENTINEL)
    env_store = make(tmp_path, env={"OPENROUTER_API_KEY": SENTINEL}, backend="file")
    for obj in (store, policy_store, env_store):
        assert_no_key(repr(obj) + str(obj))
        assert_no_key(repr(vars(obj)))
        assert_no_key(repr(obj.status()))
    store.delete()
    assert_no_key(caplog.text)
