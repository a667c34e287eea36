"""The pure parts of the API's users: who may call what, the password policy, the scrypt hashes."""

from __future__ import annotations

import pytest

from wacluster.api.users import password_problem
from wacluster.crypto.passwords import DUMMY_HASH, hash_password, verify_password
from wacluster.domain.access import needs_admin

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("method,path", [
    ("PATCH", "/v1/settings/application"), ("POST", "/v1/settings/profile/photo"),
    ("DELETE", "/v1/settings/profile/photo"), ("POST", "/v1/settings/backup"), ("POST", "/v1/account"),
    ("POST", "/v1/account/shards"), ("POST", "/v1/certificates/webhooks/ca"), ("POST", "/v1/users"),
    ("DELETE", "/v1/users/clerk"), ("PUT", "/v1/users/other"), ("GET", "/v1/users/other")])
def test_changes_to_settings_account_certificates_and_users_need_the_admin_role(method, path):
    assert needs_admin(method, path, "clerk")


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/messages"), ("POST", "/v1/contacts"), ("POST", "/v1/media"), ("DELETE", "/v1/media/ab"),
    ("GET", "/v1/settings/application"), ("GET", "/v1/health"), ("POST", "/v1/users/logout"),
    ("PUT", "/v1/users/clerk"), ("GET", "/v1/users/clerk"), ("GET", "/v1/settings/business/profile")])
def test_the_user_role_sends_reads_and_changes_its_own_password(method, path):
    assert not needs_admin(method, path, "clerk")


def test_a_path_that_merely_starts_like_an_admin_one_is_not_one():
    assert not needs_admin("POST", "/v1/accounting", "clerk")
    assert needs_admin("PUT", "/v1/users/clerk2", "clerk")


@pytest.mark.parametrize("password,problem", [
    ("Sh0rt!", "between 8 and 64"), ("x" * 65, "between 8 and 64"), ("alllower1!", "upper-case"),
    ("ALLUPPER1!", "lower-case"), ("NoDigits!!", "digit"), ("NoSpecial11", "special")])
def test_the_documented_password_policy(password, problem):
    assert problem in password_problem(password)


def test_a_password_meeting_the_policy_passes():
    assert password_problem("Good-pass1") is None


def test_a_hash_verifies_its_password_only_and_never_contains_it():
    stored = hash_password("Good-pass1")
    assert stored.startswith("scrypt$") and "Good-pass1" not in stored
    assert verify_password("Good-pass1", stored)
    assert not verify_password("Good-pass2", stored)
    assert hash_password("Good-pass1") != stored  # a salt per hash
    assert not verify_password("anything", DUMMY_HASH)
    assert not verify_password("Good-pass1", "not$a$hash")
