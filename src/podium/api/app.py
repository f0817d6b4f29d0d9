"""The FastAPI application: wires store, bus, hub and services for one server process."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podium import __version__
from podium.api import errors, routes, web, ws
from podium.api.deps import Services
from podium.api.limits import BodyLimit
from podium.api.schemas import DevTokenIn
from podium.bus.factory import create_bus
from podium.config import Settings
from podium.services import metrics
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import EventHub
from podium.services.expiry import sweep_forever
from podium.services.media import MediaService
from podium.services.moderation import ModerationService
from podium.services.permissions import PermissionsService
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
        runtime = Runtime(store, bus)
        permissions = PermissionsService(runtime)
        media = MediaService(
            runtime,
            hub,
            ice_servers=settings.ice_servers,
            turn_secret=settings.turn_secret,
            turn_ttl_s=settings.turn_ttl_s,
            loopback_only=settings.media_loopback_only,
        )
        await media.start()
        app.state.services = Services(
            settings=settings,
            calls=CallsService(runtime),
            permissions=permissions,
            moderation=ModerationService(runtime),
            hub=hub,
            media=media,
        )
        sweeper = asyncio.create_task(sweep_forever(permissions), name="podium-expiry")
        # Modules, models and tables loaded so far live as long as the process: keep
        # them out of the collector's full passes, which otherwise stall the loop.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await media.close()
            await hub.close()
            await bus.close()
            await store.close()

    app = FastAPI(
        title="Podium",
        version=__version__,
        description="Moderated audio rooms and video calls: calls, permission requests, events.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(ws.router)
    app.add_middleware(BodyLimit)
    web.install(app, settings)

    @app.get("/metrics", tags=["server"], include_in_schema=False)
    async def metrics_text() -> Response:
        """Prometheus text format."""
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
