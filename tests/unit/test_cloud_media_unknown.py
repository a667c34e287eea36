"""The webapp's memory of Cloud media ids the Graph API denied (runtime/webapp/cloud_media_in.py):
bounded in time and in count, so it neither grows without end nor hides an id for good."""

from __future__ import annotations

import pytest

from wacluster.runtime.webapp import cloud_media_in
from wacluster.runtime.webapp.cloud_media_in import CloudMediaIn

pytestmark = pytest.mark.unit


def media_in() -> CloudMediaIn:
    return CloudMediaIn(None, None, None, None, max_bytes=1)


def test_an_unknown_id_is_remembered_for_a_while_then_asked_about_again(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cloud_media_in.time, "monotonic", lambda: now[0])
    media = media_in()
    media._remember_unknown("123")
    assert media._known_unknown("123") and not media._known_unknown("456")
    now[0] += cloud_media_in.UNKNOWN_FOR
    assert not media._known_unknown("123")
    assert "123" not in media._unknown


def test_only_the_latest_unknown_ids_are_kept(monkeypatch):
    monkeypatch.setattr(cloud_media_in, "UNKNOWN_KEPT", 3)
    media = media_in()
    for media_id in ("1", "2", "3", "4"):
        media._remember_unknown(media_id)
    assert list(media._unknown) == ["2", "3", "4"]
    media._remember_unknown("2")  # denied again: now the latest
    media._remember_unknown("5")
    assert list(media._unknown) == ["4", "2", "5"]
