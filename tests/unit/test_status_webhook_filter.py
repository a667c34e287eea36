"""Which statuses become webhooks under the on-premises settings: `sent` only when
webhooks.message.sent or sent_status asks for it, `delivered`/`read` unless turned off, `failed`
and `deleted` always; inbound messages and errors are never filtered."""

from __future__ import annotations

import pytest

from wacluster.db.settings import DEFAULTS
from wacluster.domain.status_webhooks import status_wanted, wanted_payload

pytestmark = pytest.mark.unit


def settings(sent_status=False, **message):
    return {**DEFAULTS, "sent_status": sent_status, "webhook_message": {**DEFAULTS["webhook_message"], **message}}


def test_by_default_delivered_read_failed_and_deleted_are_sent_and_sent_is_not():
    assert [s for s in ("sent", "delivered", "read", "failed", "deleted") if status_wanted(s, DEFAULTS)] == [
        "delivered", "read", "failed", "deleted"]


@pytest.mark.parametrize("options", [{"sent_status": True}, {"sent": True}])
def test_sent_is_sent_when_either_setting_asks_for_it(options):
    assert status_wanted("sent", settings(**options))


@pytest.mark.parametrize("kind", ["delivered", "read"])
def test_a_kind_turned_off_is_not_sent(kind):
    assert not status_wanted(kind, settings(**{kind: False}))
    assert status_wanted("failed", settings(delivered=False, read=False))


def test_a_payload_keeps_only_the_wanted_statuses():
    payload = {"statuses": [{"id": "a", "status": "sent"}, {"id": "a", "status": "read"}]}
    assert wanted_payload(payload, settings(read=False, sent=True)) == {"statuses": [{"id": "a", "status": "sent"}]}
    assert wanted_payload(payload, settings(read=False)) is None


def test_inbound_messages_and_errors_pass_unchanged():
    message = {"contacts": [{"wa_id": "1"}], "messages": [{"id": "m", "type": "text"}]}
    errors = {"errors": [{"code": 1011, "title": "Service not ready"}]}
    off = settings(delivered=False, read=False)
    assert wanted_payload(message, off) is message and wanted_payload(errors, off) is errors
