"""The OpenAPI document, generated from the request/response models in api/rest.py."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from wacluster import __version__
from wacluster.api import idempotency, profile, rest, settings_backup, users
from wacluster.api.media_types import MEDIA_TYPES

MODELS = [rest.OutgoingMessage, rest.MessagesResponse, rest.AccountRequest, rest.VerifyRequest,
          rest.ShardsRequest, rest.ApplicationSettings, rest.ErrorResponse, rest.LoginResponse, rest.MediaResponse,
          rest.ContactsRequest, rest.ContactsResponse, users.CreateUser, users.UpdateUser, users.LoginRequest,
          users.UsersResponse, profile.AboutRequest, profile.AboutResponse, profile.BusinessProfile,
          profile.BusinessProfileResponse, settings_backup.BackupRequest, settings_backup.BackupResponse,
          settings_backup.RestoreRequest]


def _ref(model) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


# Every route may answer 503 (with Retry-After) while the database is unreachable.
ALWAYS = (503,)


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "error", "content": _json(rest.ErrorResponse)}
            for s in sorted(set(statuses) | set(ALWAYS))}


def _op(summary: str, ok: str, ok_model=None, body=None, errors=(400, 401), secured=True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary,
                          "responses": {ok: {"description": "success", **({"content": _json(ok_model)} if ok_model else {})},
                                        **_errors(*errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if secured:
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = [{"basic": []}]
    return op


IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_LENGTH},
    "description": (
        "Optional (IETF httpapi draft \"The Idempotency-Key HTTP Header Field\"): a unique value per "
        "message, e.g. a UUID, bare or quoted; visible ASCII, at most 255 characters. A retry with the same "
        "key and the same body gets the first answer (201, the same message id) and sends nothing again; "
        "the same key with another body is 422 (code 1100); while the first request is still undecided, "
        "409 (code 1101, Retry-After). A request answered 503 sent nothing and frees its key. A key is "
        "remembered as long as its message is stored; keys are per cluster (one account)."),
}


USERNAME = {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema([(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}")
    health = {"type": "object", "properties": {"health": {"type": "object", "additionalProperties": {"type": "object"}}}}
    settings = {"type": "object", "properties": {"settings": {"type": "object"}}}
    binary = {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in MEDIA_TYPES}}
    photo = {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in profile.PHOTO_TYPES}}
    pem = {"content": {"text/plain": {"schema": {"type": "string", "description": "PEM certificate(s)"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "wacluster WhatsApp Business API", "version": __version__},
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "basic": {"type": "http", "scheme": "basic"}}},
        "paths": {
            "/v1/users/login": {"post": {**_op("Log in (Basic); a user's first login sets new_password", "200",
                                               rest.LoginResponse, errors=(400, 401, 429), secured=False),
                                         "requestBody": {"required": False, "content": _json(users.LoginRequest)}}},
            "/v1/users/logout": {"post": _op("Revoke the token of this request", "200", errors=(401,))},
            "/v1/users": {"post": _op("Create a user (ADMIN role)", "201", users.UsersResponse, body=users.CreateUser,
                                      errors=(400, 401, 403, 409))},
            "/v1/users/{username}": {
                method: {**_op(summary, "200", users.UsersResponse, body=body, errors=(400, 401, 403, 404)),
                         "parameters": [USERNAME]}
                for method, summary, body in [("get", "Read a user", None),
                                              ("put", "Change a user's password", users.UpdateUser),
                                              ("delete", "Delete a user and revoke its tokens", None)]},
            "/v1/health": {"get": {**_op("Health of every master and coreapp", "200", errors=(401,)),
                                   "responses": {"200": {"description": "health",
                                                         "content": {"application/json": {"schema": health}}},
                                                 **_errors(401)}}},
            "/v1/account": {"post": _op("Request a registration code", "202", body=rest.AccountRequest,
                                        errors=(400, 401, 503))},
            "/v1/account/verify": {"post": _op("Verify the registration code", "201", body=rest.VerifyRequest,
                                               errors=(400, 401, 503))},
            "/v1/account/shards": {"post": _op("Set the number of shards", "201", body=rest.ShardsRequest)},
            "/v1/settings/application": {
                "get": {**_op("Read application settings", "200", errors=(401,)),
                        "responses": {"200": {"description": "settings",
                                              "content": {"application/json": {"schema": settings}}}, **_errors(401)}},
                "patch": {**_op("Change application settings", "200", body=rest.ApplicationSettings),
                          "responses": {"200": {"description": "settings",
                                                "content": {"application/json": {"schema": settings}}},
                                        **_errors(400, 401)}}},
            "/v1/settings/profile/about": {
                "get": _op("Read the profile's about text", "200", profile.AboutResponse, errors=(401,)),
                "patch": _op("Change the profile's about text (ADMIN role)", "200", body=profile.AboutRequest,
                             errors=(400, 401, 403))},
            "/v1/settings/profile/photo": {
                "get": {**_op("The profile photo's bytes", "200", errors=(401, 404)),
                        "responses": {"200": {"description": "the photo", **photo}, **_errors(401, 404)}},
                "post": {**_op("Set the profile photo (ADMIN role)", "200", errors=(400, 401, 403, 413, 415)),
                         "requestBody": {"required": True, **photo}},
                "delete": _op("Remove the profile photo (ADMIN role)", "200", errors=(401, 403))},
            "/v1/settings/business/profile": {
                "get": _op("Read the business profile", "200", profile.BusinessProfileResponse, errors=(401,)),
                "post": _op("Change the business profile: fields sent replace, null clears (ADMIN role)", "200",
                            body=profile.BusinessProfile, errors=(400, 401, 403))},
            "/v1/settings/backup": {"post": _op(
                "Back up the settings, profile and webhook CA, encrypted with the password (ADMIN role)", "200",
                settings_backup.BackupResponse, body=settings_backup.BackupRequest, errors=(400, 401, 403))},
            "/v1/settings/restore": {"post": _op(
                "Restore a backup made with POST /v1/settings/backup; a wrong password is 400 (ADMIN role)",
                "200", body=settings_backup.RestoreRequest, errors=(400, 401, 403, 413))},
            "/v1/certificates/webhooks/ca": {
                "get": {**_op("The webhook CA certificate (ADMIN role)", "200", errors=(401, 403, 404)),
                        "responses": {"200": {"description": "the PEM bundle", **pem}, **_errors(401, 403, 404)}},
                "post": {**_op("Set the CA certificate(s) webhook receivers' TLS certificates are verified with, "
                               "besides the system CAs (ADMIN role)", "200", errors=(400, 401, 403, 413)),
                         "requestBody": {"required": True, **pem}},
                "delete": _op("Remove the webhook CA certificate (ADMIN role)", "200", errors=(401, 403))},
            "/v1/messages": {"post": {**_op("Send a message", "201", rest.MessagesResponse, body=rest.OutgoingMessage,
                                            errors=(400, 401, 409, 422, 503)),
                                      "parameters": [IDEMPOTENCY_KEY]}},
            "/v1/contacts": {"post": _op("Check which numbers are on WhatsApp (cached 7 days)", "200",
                                         rest.ContactsResponse, body=rest.ContactsRequest)},
            "/v1/media": {"post": {**_op("Upload media", "201", rest.MediaResponse, errors=(400, 401, 413, 415)),
                                   "requestBody": {"required": True, **binary}}},
            "/v1/media/{media_id}": {"get": {**_op("Download media", "200", errors=(401, 404)),
                                             "parameters": [{"name": "media_id", "in": "path", "required": True,
                                                             "schema": {"type": "string"}}],
                                             "responses": {"200": {"description": "the media bytes", **binary},
                                                           **_errors(401, 404)}},
                                     "delete": {**_op("Delete media (file and record)", "200", errors=(401, 404)),
                                                "parameters": [{"name": "media_id", "in": "path", "required": True,
                                                                "schema": {"type": "string"}}]}},
        },
    }
