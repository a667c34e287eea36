"""What a failed Cloud API send means for the message: send it again later (throttling, a server
that is down or slow), end it as `failed` with an on-premises error in its status webhook, or
stop sending for the whole account (the token or the account is not usable: every message would
fail the same way, so none is failed and the queue waits).

Pure: the driver passes the HTTP status (None when no answer came: timeout, connection reset) and
the decoded `{"error": {...}}` body, if any. Codes are Meta's Cloud API error codes; the on-premises
codes are the ones the on-premises client put in a failed status ({"code", "title", "details"})."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping


class Action(Enum):
    RETRY = "retry"            # keep the message queued and send it again after a backoff
    FAIL = "fail"              # end the message as failed, with `on_prem` in its status webhook
    PAUSE_ACCOUNT = "pause"    # stop every send of the account until it is fixed; fail nothing


class Scope(Enum):
    """Who waits before the next send."""
    MESSAGE = "message"        # this message (a server error or timeout)
    RECIPIENT = "recipient"    # every message to this recipient (131056 pair rate limit), others go on
    ACCOUNT = "account"        # the whole phone number / app: lower the shared send budget


@dataclass(frozen=True)
class OnPremError:
    code: int
    title: str
    details: str = ""

    def as_status_error(self) -> dict[str, Any]:
        """The element of a failed status's `errors` list, as the on-premises client sent it."""
        error: dict[str, Any] = {"code": self.code, "title": self.title}
        if self.details:
            error["details"] = self.details
        return error


@dataclass(frozen=True)
class SendFailure:
    action: Action
    scope: Scope
    cloud_code: int | None
    reason: str                       # one sentence for the log
    on_prem: OnPremError | None = None  # set when action is FAIL


# Throttling and transient server trouble: never drops a message.
RETRY: dict[int, tuple[Scope, str]] = {
    1: (Scope.MESSAGE, "unknown Graph API error, possibly a server error"),
    2: (Scope.MESSAGE, "Graph API service temporarily unavailable"),
    4: (Scope.ACCOUNT, "application request limit reached"),
    80007: (Scope.ACCOUNT, "WhatsApp Business Account rate limit reached"),
    130429: (Scope.ACCOUNT, "Cloud API throughput limit reached"),
    131000: (Scope.MESSAGE, "something went wrong on Meta's side"),
    131016: (Scope.MESSAGE, "service unavailable"),
    131048: (Scope.ACCOUNT, "spam rate limit hit for this phone number"),
    131056: (Scope.RECIPIENT, "pair rate limit: too many messages to this recipient"),
    131057: (Scope.ACCOUNT, "business account in maintenance mode"),
    133004: (Scope.MESSAGE, "server temporarily unavailable"),
}

# The account cannot send at all: an operator must act (new token, payment, unlock).
PAUSE: dict[int, str] = {
    0: "the access token could not be authenticated",
    3: "the app lacks the capability or permission for this call",
    10: "permission denied for this phone number",
    190: "the access token is invalid or expired",
    368: "the account is temporarily blocked for policy violations",
    131031: "the business account is locked",
    131037: "the phone number's display name needs approval",
    131042: "the business account has a payment problem",
    131045: "the phone number's certificate is not valid (register it again)",
    133010: "the phone number is not registered with the Cloud API",
}
# Graph API permission errors (200-299) mean the same as 10.
PERMISSION_CODES = range(200, 300)

# Permanent, per message: (on-premises code, title as the on-premises client wrote it). Cloud kept
# the on-premises numbering for template errors (132NNN is 2NNN). Any other code (media download,
# marketing opt-out, ...) fails as 1000 with the Cloud code and message in `details`.
ON_PREM_BY_CLOUD: dict[int, tuple[int, str]] = {
    100: (1009, "Parameter value is not valid"),
    131008: (1008, "Required parameter is missing"),
    131009: (1009, "Parameter value is not valid"),
    131021: (1021, "Bad User"),
    131026: (1013, "User is not valid"),
    131047: (470, "Message failed to send because more than 24 hours have passed since the customer last replied to this number"),
    131051: (1026, "Receiver Incapable"),
    130472: (472, "User's number is part of an experiment"),
    132000: (2000, "Template Param Count Mismatch"),
    132001: (2001, "Template Missing"),
    132005: (2005, "Template Hydrated Text Too Long"),
    132007: (2007, "Template Format Character Policy Violated"),
    132012: (2012, "Template Parameter Format Mismatch"),
}
TEMPLATE_CODES = range(132000, 133000)
GENERIC = (1000, "Generic error")
# A template error on-premises had no number for (paused, disabled, flow blocked).
TEMPLATE_GENERIC = (2002, "Template Fetch Failed")


def classify(http_status: int | None, body: Mapping[str, Any] | None) -> SendFailure:
    """The verdict on one failed send. `http_status` None: no answer (timeout, reset)."""
    error = (body or {}).get("error") if isinstance(body, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    message = str(error.get("message", "")) if isinstance(error, Mapping) else ""
    if not isinstance(code, int) or isinstance(code, bool):
        return _by_http_status(http_status)
    if code in RETRY:
        scope, why = RETRY[code]
        return SendFailure(Action.RETRY, scope, code, f"Cloud API {code}: {why}; sending again later")
    if code in PAUSE or code in PERMISSION_CODES:
        why = PAUSE.get(code, "permission denied")
        return SendFailure(Action.PAUSE_ACCOUNT, Scope.ACCOUNT, code,
                           f"Cloud API {code}: {why}; sending paused for the account")
    details = f"Cloud API error {code}: {message}" if message else f"Cloud API error {code}"
    if code in ON_PREM_BY_CLOUD:
        on_prem_code, title = ON_PREM_BY_CLOUD[code]
    elif code in TEMPLATE_CODES:
        on_prem_code, title = TEMPLATE_GENERIC
    elif http_status is not None and (http_status == 429 or http_status >= 500):
        # An unknown code on a throttling or server answer: the status says it is transient.
        return _by_http_status(http_status, code)
    else:
        on_prem_code, title = GENERIC
    return SendFailure(Action.FAIL, Scope.MESSAGE, code, f"Cloud API {code}: permanent; message failed",
                       OnPremError(on_prem_code, title, details))


def _by_http_status(http_status: int | None, code: int | None = None) -> SendFailure:
    if http_status is None:
        return SendFailure(Action.RETRY, Scope.MESSAGE, code, "no answer from the Cloud API; sending again later")
    if http_status == 429:
        return SendFailure(Action.RETRY, Scope.ACCOUNT, code, "HTTP 429 from the Cloud API; sending again later")
    if http_status >= 500:
        return SendFailure(Action.RETRY, Scope.MESSAGE, code,
                           f"HTTP {http_status} from the Cloud API; sending again later")
    if http_status == 401:
        return SendFailure(Action.PAUSE_ACCOUNT, Scope.ACCOUNT, code,
                           "HTTP 401 from the Cloud API: the access token is not accepted; sending paused")
    # A 4xx without a Cloud error body (a proxy's answer, a wrong base URL): the request itself
    # is wrong for every message alike, so pause rather than fail the whole queue one by one.
    return SendFailure(Action.PAUSE_ACCOUNT, Scope.ACCOUNT, code,
                       f"HTTP {http_status} from the Cloud API without a Cloud error; sending paused")
