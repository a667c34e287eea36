"""Assembles the webapp: routes, middlewares (errors, metrics, auth), TLS and the CLI entry."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Histogram

from wacluster.api.interprocess import MEDIA_DIR, Env, Port, Role
from wacluster.db.connection import conninfo_from_env, open_pool
from wacluster.runtime.internal_auth import internal_token
from wacluster.runtime.node import gateway_url
from wacluster.runtime.service import configure_logging, install_stop_signals, metrics_app, run_loop
from wacluster.runtime.supervision import Policy, Supervisor
from wacluster.runtime.webapp.auth import Auth
from wacluster.runtime.gateway import cloud_settings as cloud_gateway_settings
from wacluster.runtime.webapp.cloud_media_in import CloudMediaIn
from wacluster.runtime.webapp.cloud_account import cloud_account_from_env
from wacluster.runtime.webapp.cloud_relay import CloudRelay
from wacluster.runtime.webapp.cloud_webhooks import CloudWebhooks, settings_from_env
from wacluster.runtime.webapp.contacts import ContactChecks
from wacluster.runtime.webapp.errors import DATABASE_WAIT, error_middleware
from wacluster.runtime.webapp.handlers import Handlers
from wacluster.runtime.webapp.media import Media
from wacluster.runtime.webapp.media_retention import MediaRetention
from wacluster.runtime.webapp.meta import meta_middleware
from wacluster.api.openapi import openapi_document
from wacluster.runtime.webapp.routing import Router, ShardMapCache
from wacluster.runtime.webapp.tls import reload_on_change, tls_context
from wacluster.runtime.webapp.users import Users
from wacluster.runtime.webapp.profile import Profile
from wacluster.runtime.webapp.certificates import Certificates
from wacluster.runtime.webapp.settings_backup import SettingsBackup
from wacluster.domain.webhook_destinations import parse_networks
from wacluster.runtime.webapp.destinations import AllowedDestinationsResolver
from wacluster.runtime.webapp.webhooks import WebhookDispatcher
from wacluster.runtime.webapp.workers import WorkerPool, mark_ready, worker_argv, worker_count, workers_option

log = logging.getLogger("wacluster.webapp")

REQUESTS = Counter("wacluster_webapp_requests_total", "API requests by route and status.", ["route", "status"])
LATENCY = Histogram("wacluster_webapp_request_duration_seconds", "API request latency by route.", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
MAX_BODY = 17 * 1024 * 1024  # the media limit plus headroom; JSON bodies are checked tighter


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    started = time.monotonic()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    response = await handler(request)
    REQUESTS.labels(route=route, status=str(response.status)).inc()
    LATENCY.labels(route=route).observe(time.monotonic() - started)
    return response


def build_app(handlers: Handlers, auth: Auth, media: Media, contacts: ContactChecks,
              cloud: CloudWebhooks | None = None) -> web.Application:
    users = Users(auth.pool, auth)
    profile = Profile(auth.pool)
    certificates, backup = Certificates(auth.pool), SettingsBackup(auth.pool)
    app = web.Application(middlewares=[metrics_middleware, meta_middleware, error_middleware, auth.middleware(),
                                       users.middleware()],
                          client_max_size=MAX_BODY)
    routes = [
        ("POST", "/v1/users/login", auth.login),
        ("POST", "/v1/users/logout", users.logout),
        ("POST", "/v1/users", users.create),
        ("GET", "/v1/users/{username}", users.read),
        ("PUT", "/v1/users/{username}", users.update),
        ("DELETE", "/v1/users/{username}", users.delete),
        ("GET", "/v1/health", handlers.health),
        ("POST", "/v1/account", handlers.register),
        ("POST", "/v1/account/verify", handlers.verify),
        ("POST", "/v1/account/shards", handlers.set_shards),
        ("GET", "/v1/settings/application", handlers.get_settings),
        ("PATCH", "/v1/settings/application", handlers.patch_settings),
        ("POST", "/v1/messages", handlers.send_message),
        ("POST", "/v1/contacts", contacts.check),
        ("POST", "/v1/media", media.upload),
        ("GET", "/v1/media/{media_id}", media.download),
        ("DELETE", "/v1/media/{media_id}", media.delete),
        ("GET", "/v1/settings/profile/about", profile.get_about),
        ("PATCH", "/v1/settings/profile/about", profile.set_about),
        ("GET", "/v1/settings/profile/photo", profile.get_photo),
        ("POST", "/v1/settings/profile/photo", profile.set_photo),
        ("DELETE", "/v1/settings/profile/photo", profile.delete_photo),
        ("GET", "/v1/settings/business/profile", profile.get_business),
        ("POST", "/v1/settings/business/profile", profile.set_business),
        ("POST", "/v1/settings/backup", backup.backup),
        ("POST", "/v1/settings/restore", backup.restore),
        ("GET", "/v1/certificates/webhooks/ca", certificates.get_webhooks_ca),
        ("POST", "/v1/certificates/webhooks/ca", certificates.set_webhooks_ca),
        ("DELETE", "/v1/certificates/webhooks/ca", certificates.delete_webhooks_ca),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    if cloud is not None:  # Meta's calls carry a signature, not a token
        cloud.add_routes(app)
        auth.public_paths.add(cloud.settings.path)
    document = openapi_document()

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/v1/openapi.json", openapi)
    return app


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(Role.WEBAPP, help="run the REST API (routes requests by the shard map)")
    parser.add_argument("--port", type=int, default=Port.API)
    parser.add_argument("--host", default=os.environ.get(Env.LISTEN_HOST, "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=Port.METRICS)
    parser.add_argument("--media-dir", default=MEDIA_DIR)
    parser.add_argument("--media-max-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--token-ttl", type=float, default=7 * 86400.0)
    parser.add_argument("--plain-http", action="store_true", help="serve without TLS (local benchmarks only)")
    parser.add_argument("--workers", type=workers_option, default=1,
                        help="processes serving the API port (SO_REUSEPORT), each with its own database pool; "
                             "'auto': one per CPU of the container's CPU limit (runtime/webapp/workers.py)")
    parser.add_argument("--pool-worker", action="store_true", help=argparse.SUPPRESS)  # started by --workers
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(Role.WEBAPP)
    count = 1 if args.pool_worker else worker_count(args.workers)
    if count > 1:
        log.info("webapp starting %d workers on %s:%d", count, args.host, args.port)
        return run_loop(WorkerPool(worker_argv(args), count, args.host, args.metrics_port).run())
    username = os.environ.get(Env.ADMIN_USERNAME, "admin")
    password = os.environ.get(Env.ADMIN_PASSWORD)
    if not password:
        raise RuntimeError(f"{Env.ADMIN_PASSWORD} is not set (the operator passes it from the admin Secret)")
    signing_key = os.environ.get(Env.WEBHOOK_SIGNING_KEY, "").encode()
    if not signing_key:
        raise RuntimeError(f"{Env.WEBHOOK_SIGNING_KEY} is not set (the operator passes it from the "
                           f"<cluster>-webhook-signing Secret)")
    token = internal_token()  # before anything starts: without it no coreapp takes a hand-off
    cloud_settings = settings_from_env()  # None: not in cloud mode, no Cloud webhooks
    # With the access token (cloud mode) inbound media ids are fetched from the Cloud API.
    cloud_gateway = cloud_gateway_settings() if os.environ.get(Env.CLOUD_ACCESS_TOKEN) else None

    async def main() -> None:
        # First, before the slow start: a SIGTERM while starting (a pool stopping a worker it just
        # started) then ends the start cleanly instead of killing the process.
        stop = asyncio.Event()
        install_stop_signals(stop)
        # A client waits at most DATABASE_WAIT for a connection; then it gets a 503 and Retry-After.
        pool = await open_pool(conninfo_from_env(), min_size=2, max_size=16, timeout=DATABASE_WAIT)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        # Webhooks get a session of their own: it resolves only to destinations the cluster allows.
        allowed = parse_networks(os.environ.get(Env.WEBHOOK_ALLOWED_NETWORKS, ""))
        webhook_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            limit=64, resolver=AllowedDestinationsResolver(allowed)))
        cache = ShardMapCache(pool)
        cloud_account = cloud_account_from_env(session)  # None: the sandbox's protocol
        handlers = Handlers(pool, cache, Router(cache, session, token), session, gateway_url(), allowed,
                            cloud_account)
        contacts = ContactChecks(pool, session, gateway_url(), cloud=cloud_account is not None)
        relay = CloudRelay(pool)
        cloud = CloudWebhooks(pool, cloud_settings, relay.stored) if cloud_settings else None
        cloud_in = CloudMediaIn(pool, Path(args.media_dir), cloud_gateway, session,
                                args.media_max_bytes) if cloud_gateway else None
        app = build_app(handlers, Auth(pool, username, password, args.token_ttl),
                        Media(pool, Path(args.media_dir), args.media_max_bytes, cloud_in), contacts, cloud)
        supervisor = Supervisor(log)
        supervisor.add("shard-map", cache.run, Policy.RESTART)
        supervisor.add("shard-map-listener", cache.listener.run, Policy.RESTART)
        supervisor.add("contact-checks", contacts.run, Policy.RESTART)
        supervisor.add("webhooks", WebhookDispatcher(pool, webhook_session, signing_key, allowed).run, Policy.RESTART)
        supervisor.add("media-retention", MediaRetention(pool, Path(args.media_dir)).run, Policy.RESTART)
        if cloud is not None:
            supervisor.add("cloud-relay", relay.run, Policy.RESTART)
        if args.pool_worker:
            announced = asyncio.Event()

            async def announce_ready() -> None:
                while cache.loaded_at == 0:
                    await cache.changed.wait()
                mark_ready()
                announced.set()
            supervisor.add("readiness", announce_ready, Policy.RESTART, finished=announced)
        runners = []
        context = None if args.plain_http else tls_context(os.environ.get(Env.TLS_DIR))
        if context is not None:
            tls_dir = os.environ.get(Env.TLS_DIR)
            supervisor.add("tls-reload", lambda: reload_on_change(context, tls_dir), Policy.RESTART)
        for application, port, ssl_context in [(app, args.port, context),
                                               (metrics_app(lambda: cache.loaded_at > 0 or "shard map not loaded"),
                                                args.metrics_port, None)]:
            if not port:
                continue
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            # Pool workers share the API port; the metrics port is the parent's (workers.py).
            await web.TCPSite(runner, args.host, port, ssl_context=ssl_context, reuse_address=True,
                              reuse_port=args.pool_worker or None).start()
            runners.append(runner)
        log.info("webapp serving %s on %s:%d", "HTTP" if args.plain_http else "HTTPS", args.host, args.port)
        try:
            await supervisor.run(stop.wait, name="serving")
        finally:
            await cache.listener.close()
            for runner in runners:
                await runner.cleanup()
            await session.close()
            await webhook_session.close()
            await pool.close()

    run_loop(main())
    return 0
