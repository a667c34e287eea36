"""Media sent by our id is read from the media volume by that id only (runtime/coreapp/cloud_media.py):
an id that is not one the webapp gives fails the message and never becomes a path."""

from __future__ import annotations

import pytest

from wacluster.domain.cloud_errors import Action
from wacluster.runtime.coreapp.cloud_media import CloudMedia, UploadFailed
from wacluster.runtime.gateway import CloudSettings

pytestmark = pytest.mark.unit

SETTINGS = CloudSettings("http://127.0.0.1:9", "v23.0", "1065", 80, access_token="secret-token")


@pytest.mark.parametrize("media_id", ["../../etc/passwd", "/etc/passwd", "0" * 31, "A" * 32, ""])
async def test_a_media_id_that_is_not_ours_fails_the_message_without_touching_a_file(tmp_path, media_id):
    (tmp_path / "passwd").write_bytes(b"root:x:0:0")
    media = CloudMedia(None, SETTINGS, None, tmp_path / "media", "wacore1")  # no HTTP, no database: neither is reached
    with pytest.raises(UploadFailed) as err:
        await media.cloud_ids({media_id})
    failure = err.value.failure
    assert failure.action is Action.FAIL and failure.on_prem.code == 1006
    assert media._locks == {} and media._waiting == {}  # nothing left behind
