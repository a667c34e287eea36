"""The settings backup's encryption: what seal() makes only open_sealed() with the same password
opens; a wrong password, a changed byte or something that is not a backup says which it is."""

from __future__ import annotations

import base64

import pytest

from wacluster.crypto.settings_backup import BackupUnreadable, WrongPassword, open_sealed, seal

pytestmark = pytest.mark.unit


def test_a_backup_opens_with_its_password_and_hides_its_content():
    data = seal(b'{"webhook_url": "https://crm.example/hook"}', "correct horse")
    assert b"crm.example" not in base64.b64decode(data)
    assert open_sealed(data, "correct horse") == b'{"webhook_url": "https://crm.example/hook"}'


def test_two_backups_of_the_same_content_differ():
    """A random salt and nonce each time: equal settings are not visible as equal blobs."""
    assert seal(b"same", "pw") != seal(b"same", "pw")


def test_a_wrong_password_is_told_apart_from_unreadable_data():
    data = seal(b"settings", "right")
    with pytest.raises(WrongPassword):
        open_sealed(data, "wrong")


def test_a_changed_byte_is_detected():
    raw = bytearray(base64.b64decode(seal(b"settings", "pw")))
    raw[-1] ^= 1
    with pytest.raises(WrongPassword):
        open_sealed(base64.b64encode(bytes(raw)).decode(), "pw")


def test_a_changed_version_byte_is_detected():
    """The header is authenticated: relabelling a blob with another format version fails."""
    raw = bytearray(base64.b64decode(seal(b"settings", "pw")))
    raw[0] = 2
    with pytest.raises(BackupUnreadable, match="version 2"):
        open_sealed(base64.b64encode(bytes(raw)).decode(), "pw")


@pytest.mark.parametrize("data", ["not base64 at all!", "", base64.b64encode(b"\x01short").decode(), "é"])
def test_what_is_not_a_backup_is_unreadable(data):
    with pytest.raises(BackupUnreadable):
        open_sealed(data, "pw")
