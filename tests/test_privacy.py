"""The privacy key file: created once at 0600, refused when open to others or damaged, pseudonyms
stable under one key and different under another, sealed values open only with their key."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from inbox_daemon.config import load_config
from inbox_daemon.errors import ConfigError
from inbox_daemon.privacy import PSEUDONYM_BYTES, SealedDataError, load_keyring


def test_created_once_at_0600_and_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "state" / "privacy.key"
    ring = load_keyring(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keyring(path, create=True)
    assert again.pseudonym(b"114-2038475-6619203") == ring.pseudonym(b"114-2038475-6619203")
    assert again.check_value() == ring.check_value()
    assert [p.name for p in path.parent.iterdir()] == ["privacy.key"]  # no temporary left


def test_pseudonym_is_hmac_sha256_truncated_to_128_bits(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "k", create=True)
    digest = ring.pseudonym(b"abc@marketplace.amazon.com")
    assert len(digest) == PSEUDONYM_BYTES == 16
    assert digest == hmac.new(ring.pseudonym_key, b"abc@marketplace.amazon.com", hashlib.sha256).digest()[:16]
    other = load_keyring(tmp_path / "other", create=True)
    assert other.pseudonym(b"abc@marketplace.amazon.com") != digest
    assert other.check_value() != ring.check_value()


def test_missing_file_without_create_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_keyring(tmp_path / "absent.key", create=False)
    assert not (tmp_path / "absent.key").exists()


@pytest.mark.parametrize("mode", [0o644, 0o620, 0o606, 0o660])
def test_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "privacy.key"
    load_keyring(path, create=True)
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match="open to others"):
        load_keyring(path, create=False)


def test_group_read_is_allowed_for_a_shared_group(tmp_path: Path) -> None:
    path = tmp_path / "privacy.key"
    load_keyring(path, create=True)
    os.chmod(path, 0o640)
    load_keyring(path, create=False)


@pytest.mark.parametrize("content", [b"", b"{", b'{"version": 1}', b"\x00\xff" * 10,
                                     b'{"version": 1, "pseudonym_key": "c2hvcnQ=", "data_keys": {}, "current": "k1"}'])
def test_damaged_file_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "privacy.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as caught:
        load_keyring(path, create=True)
    assert "not a valid key file" in str(caught.value)
    assert path.read_bytes() == content  # never overwritten


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_keyring(real, create=True)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="cannot read"):
        load_keyring(link, create=False)


def test_secrets_never_in_repr(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "k", create=True)
    document = json.loads((tmp_path / "k").read_text())
    shown = repr(ring) + str(ring.pseudonym_secret) + repr(ring.data_keys)
    assert document["pseudonym_key"] not in shown
    assert all(key not in shown for key in document["data_keys"].values())
    assert "***" in repr(ring.pseudonym_secret)


def test_sealed_values_open_with_their_context_and_any_ring_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    ring = load_keyring(path, create=True)
    sealed = ring.encrypt(b"buyer name", context=b"raw_messages")
    assert b"buyer name" not in sealed
    assert ring.decrypt(sealed, context=b"raw_messages") == b"buyer name"
    with pytest.raises(SealedDataError):
        ring.decrypt(sealed, context=b"another column")
    rotated = ring.with_new_data_key()
    rotated.save(path)
    reread = load_keyring(path, create=False)
    assert reread.current == "k2" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert reread.decrypt(sealed, context=b"raw_messages") == b"buyer name"  # the old key still opens
    assert reread.key_id_of(reread.encrypt(b"x")) == "k2"
    assert reread.pseudonym(b"a") == ring.pseudonym(b"a")  # the pseudonym key never rotates
    retired = reread.without_data_keys({"k1"})
    with pytest.raises(SealedDataError, match="not in the key file"):
        retired.decrypt(sealed, context=b"raw_messages")
    with pytest.raises(ValueError):
        reread.without_data_keys({"k2"})


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02\x02k1" + bytes(40), b"\x01\x02k1" + bytes(5)])
def test_not_a_sealed_value(tmp_path: Path, blob: bytes) -> None:
    ring = load_keyring(tmp_path / "k", create=True)
    with pytest.raises(SealedDataError):
        ring.decrypt(blob)


def test_damaged_ciphertext_does_not_open(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "k", create=True)
    sealed = bytearray(ring.encrypt(b"message text"))
    sealed[-1] ^= 1
    with pytest.raises(SealedDataError, match="does not open"):
        ring.decrypt(bytes(sealed))


def _create(path: str, out: multiprocessing.Queue[str]) -> None:  # type: ignore[type-arg]
    out.put(load_keyring(Path(path), create=True).check_value())


def test_two_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "privacy.key"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_create, args=(str(path), queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    values = {queue.get(timeout=5) for _ in workers}
    assert values == {load_keyring(path, create=False).check_value()}


def test_key_file_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_DAEMON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert load_config(None, environ={}).privacy_key_file == tmp_path / "home" / "privacy.key"
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "privacy-key").write_text("x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load_config(None, environ={}).privacy_key_file == credentials / "privacy-key"
    configured = load_config(None, environ={"INBOX_DAEMON_PRIVACY_KEY_FILE": "/etc/k"})
    assert configured.privacy_key_file == Path("/etc/k")
    with pytest.raises(ConfigError, match="retain_days"):
        load_config(None, environ={"INBOX_DAEMON_PRIVACY_RETAIN_DAYS": "0"})
