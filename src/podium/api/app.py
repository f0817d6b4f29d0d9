"""The FastAPI application: wires store, bus, hub and services for one server process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podium import __version__
from podium.api import docs, errors, routes, web, ws
from podium.api.deps import Caller, Services
from podium.api.hosts import LoopbackHostsOnly
from podium.api.limits import BodyGuard
from podium.api.metrics_port import serve_metrics
from podium.api.schemas import DevTokenIn
from podium.bus.factory import create_bus
from podium.config import Settings
from podium.core.errors import PermissionDenied
from podium.protocol.errors import ErrorCode
from podium.services import metrics
from podium.services.audience import AudienceCounter
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import EventHub
from podium.services.heap import HeapKeeper
from podium.services.media_relay import media_for
from podium.services.moderation import ModerationService
from podium.services.periodic import run_every
from podium.services.permissions import PermissionsService
from podium.services.presence import PresenceService
from podium.services.revocations import Revocations
from podium.store.sql import create_store
from podium.tokens import mint_user_token


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = create_store(settings.database_url)
        await store.open()
        bus = create_bus(settings.redis_url)
        await bus.start()
        hub = EventHub(store, bus)
        await hub.start()
        revocations = Revocations(
            store, on_revoked=lambda ids: hub.close_tokens(ids, 4001, ErrorCode.TOKEN_REVOKED)
        )
        await revocations.start()
        runtime = Runtime(store, bus, limits=settings.limits)
        permissions = PermissionsService(runtime)
        media = media_for(settings, runtime, hub)
        await media.start()
        presence = PresenceService(runtime, hub, grace_s=settings.presence_grace_s)
        await presence.start()
        audience = AudienceCounter(runtime)
        await audience.start()
        metrics.SFU.call_labels = settings.metrics_call_labels
        app.state.services = Services(
            settings=settings,
            calls=CallsService(runtime),
            permissions=permissions,
            moderation=ModerationService(runtime),
            hub=hub,
            media=media,
            revocations=revocations,
        )
        # Without it a request nobody answers would stay "awaiting" on the requester's screen.
        sweeper = asyncio.create_task(
            run_every(1.0, permissions.expire_overdue, "expiring requests"), name="podium-expiry"
        )
        # Keeps the collector's full passes from stalling the loop (services/heap.py).
        heap = HeapKeeper()
        await heap.start()
        exporter = None
        if settings.metrics_port is not None:
            exporter = await serve_metrics(settings.metrics_port)
        try:
            yield
        finally:
            if exporter is not None:
                exporter.close()
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await heap.close()
            await audience.close()
            await presence.close()
            await media.close()
            await revocations.close()
            await hub.close()
            await bus.close()
            await store.close()

    app = FastAPI(
        title="Podium",
        version=__version__,
        description="Moderated audio rooms and video calls: calls, permission requests, events.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(ws.router)
    app.add_middleware(BodyGuard, limit=settings.limits.body_bytes)
    if settings.dev:
        app.add_middleware(LoopbackHostsOnly)
    web.install(app, settings)
    docs.install(app)

    @app.get("/metrics", tags=["server"], include_in_schema=False)
    async def metrics_text(who: Caller) -> Response:
        """Prometheus text format, for server tokens (`--metrics-port` serves it without one)."""
        if not who.server:
            raise PermissionDenied("metrics need a server token", {"server": True})
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    if settings.dev:

        @app.post("/v1/dev/token", tags=["dev"])
        async def dev_token(body: DevTokenIn) -> dict[str, Any]:
            """Mint a user token without credentials (only with `podium serve --dev`)."""
            token = mint_user_token(settings.secret, body.user_id, name=body.name, role=body.role)
            return {"token": token, "user_id": body.user_id}

    return app
