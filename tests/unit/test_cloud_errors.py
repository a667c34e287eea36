"""A failed Cloud API send is retried (throttling, server trouble), ends as failed with the
on-premises error its status webhook carries, or pauses the account (token, account state)."""

from __future__ import annotations

import pytest

from wacluster.domain.cloud_errors import Action, OnPremError, Scope, classify

pytestmark = pytest.mark.unit


def cloud(code: int, message: str = "m") -> dict:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}}


@pytest.mark.parametrize("status, code, scope", [
    (400, 4, Scope.ACCOUNT),
    (400, 80007, Scope.ACCOUNT),
    (400, 130429, Scope.ACCOUNT),
    (400, 131048, Scope.ACCOUNT),
    (400, 131056, Scope.RECIPIENT),
    (500, 1, Scope.MESSAGE),
    (503, 2, Scope.MESSAGE),
    (500, 131000, Scope.MESSAGE),
    (503, 131016, Scope.MESSAGE),
    (503, 133004, Scope.MESSAGE),
])
def test_throttling_and_transient_codes_are_retried(status, code, scope):
    verdict = classify(status, cloud(code))
    assert (verdict.action, verdict.scope, verdict.cloud_code, verdict.on_prem) == (Action.RETRY, scope, code, None)


@pytest.mark.parametrize("status, body, scope", [
    (None, None, Scope.MESSAGE),                       # timeout, connection reset
    (429, None, Scope.ACCOUNT),
    (500, None, Scope.MESSAGE),
    (502, {"unexpected": "proxy page"}, Scope.MESSAGE),
    (503, cloud(999_999), Scope.MESSAGE),              # unknown code on a server error
    (429, cloud(999_999), Scope.ACCOUNT),
])
def test_no_answer_429_and_5xx_without_a_known_code_are_retried(status, body, scope):
    verdict = classify(status, body)
    assert (verdict.action, verdict.scope) == (Action.RETRY, scope)


@pytest.mark.parametrize("code, on_prem_code", [
    (100, 1009),
    (131008, 1008),
    (131009, 1009),
    (131021, 1021),
    (131026, 1013),
    (131047, 470),
    (131051, 1026),
    (130472, 472),
    (132000, 2000),
    (132001, 2001),
    (132005, 2005),
    (132007, 2007),
    (132012, 2012),
    (132015, 2002),      # template paused: no on-prem number of its own
    (132016, 2002),
    (132069, 2002),
    (131050, 1000),      # marketing opt-out: generic, Cloud code in the details
    (131052, 1000),
])
def test_permanent_codes_fail_the_message_with_the_on_prem_error(code, on_prem_code):
    verdict = classify(400, cloud(code, "Message undeliverable."))
    assert (verdict.action, verdict.scope) == (Action.FAIL, Scope.MESSAGE)
    assert verdict.on_prem.code == on_prem_code
    assert verdict.on_prem.details == f"Cloud API error {code}: Message undeliverable."


@pytest.mark.parametrize("status, code", [
    (401, 190), (400, 190), (400, 0), (403, 10), (403, 200), (403, 299), (400, 368),
    (400, 131031), (400, 131042), (400, 133010),
])
def test_token_and_account_problems_pause_the_account(status, code):
    verdict = classify(status, cloud(code))
    assert (verdict.action, verdict.scope, verdict.on_prem) == (Action.PAUSE_ACCOUNT, Scope.ACCOUNT, None)
    assert "paused" in verdict.reason


@pytest.mark.parametrize("status", [401, 404, 400])
def test_a_4xx_without_a_cloud_error_pauses_rather_than_failing_every_message(status):
    assert classify(status, {"html": "not the Graph API"}).action is Action.PAUSE_ACCOUNT


def test_an_unknown_code_on_a_4xx_fails_as_a_generic_error():
    verdict = classify(400, cloud(987654, "new"))
    assert verdict.action is Action.FAIL and verdict.on_prem == OnPremError(1000, "Generic error", "Cloud API error 987654: new")


def test_the_on_prem_error_has_the_shape_of_a_failed_status():
    verdict = classify(400, cloud(131047, "Re-engagement message"))
    assert verdict.on_prem.as_status_error() == {
        "code": 470,
        "title": "Message failed to send because more than 24 hours have passed since the customer last replied to this number",
        "details": "Cloud API error 131047: Re-engagement message"}
    assert OnPremError(1000, "Generic error").as_status_error() == {"code": 1000, "title": "Generic error"}


def test_a_boolean_code_is_not_taken_for_a_number():
    assert classify(500, {"error": {"code": True}}).action is Action.RETRY
