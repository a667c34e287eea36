"""The local Cloud API's standalone entry takes the options of `wacluster testenv cloudapi`."""

from __future__ import annotations

import pytest

from wacluster_testenv.cloudapi import DEFAULT_MESSAGES_PER_SECOND, DEFAULT_PHONE_NUMBER_ID
from wacluster_testenv.cloudapi_main import parser

pytestmark = pytest.mark.harness


def test_the_standalone_entry_reads_the_cloudapi_options():
    args = parser().parse_args(["--host", "0.0.0.0", "--port", "9000", "--phone-number-id", "123",
                                "--messages-per-second", "20", "--token-env", "TOKEN"])
    assert (args.host, args.port, args.phone_number_id, args.messages_per_second) == ("0.0.0.0", 9000, "123", 20)
    assert (args.token_env, args.app_secret_env) == ("TOKEN", "CLOUDAPI_APP_SECRET")


def test_unset_options_are_the_local_cloud_api_defaults():
    args = parser().parse_args([])
    assert (args.phone_number_id, args.messages_per_second) == (DEFAULT_PHONE_NUMBER_ID, DEFAULT_MESSAGES_PER_SECOND)
