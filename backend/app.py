"""The FastAPI app factory and its lifespan.

``create_app`` builds the app without connecting anywhere. Its lifespan, on start,
opens the database engine (tables created if missing, the recipe catalog stored),
makes sure the favourites topic and its dead-letter topic exist, and starts the one
Kafka producer; on stop it flushes and closes the producer (bounded) and disposes of
the engine. A failure at start leaves nothing open behind it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from backend.catalog import RecipeCatalog, load_catalog, store_catalog
from backend.metrics import BackendMetrics
from backend.middleware import (
    MAX_BODY_BYTES,
    BodyLimitMiddleware,
    RequestMetricsMiddleware,
    TraceIdMiddleware,
)
from backend.publisher import FavoritePublisher
from backend.routes import (
    bench_router,
    favorites_router,
    operations_router,
    recipes_router,
)
from backend.state import BackendState
from pipeline_core.settings import Settings
from pipeline_core.storage import create_schema, make_engine

logger = logging.getLogger(__name__)


class BackendConfigError(ValueError):
    """The app cannot be built with the given settings; the message says why."""


def create_app(
    settings: Settings,
    *,
    api_token: str | None = None,
    catalog: RecipeCatalog | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    bench_endpoint: bool = False,
) -> FastAPI:
    """Build the backend app; nothing connects until its lifespan starts.

    Args:
        settings: Kafka, topic, database and publish deadline to use.
        api_token: the bearer token writes need; defaults to ``settings.api_token``.
        catalog: the recipe catalog; defaults to the shipped ``recipes.json``.
        max_body_bytes: request bodies over this answer ``413``.
        bench_endpoint: also serve ``POST /bench/favorites-unpublished`` (validates
            like ``POST /v1/favorites`` but does not publish), for the benchmark.

    Raises:
        BackendConfigError: no API token was given or configured.
    """
    token = api_token
    if token is None and settings.api_token is not None:
        token = settings.api_token.get_secret_value()
    if not token:
        raise BackendConfigError(
            "the backend needs an API token: set API_TOKEN or pass api_token"
        )
    metrics = BackendMetrics()
    recipes = catalog if catalog is not None else load_catalog()

    app = FastAPI(
        title="recipe-pipeline backend",
        version="1",
        summary="Favourite interactions published to Kafka; the recipe catalog.",
        lifespan=_lifespan_for(settings, metrics, recipes),
    )
    app.state.api_token = token.encode("utf-8")
    app.state.startup_error = None
    app.include_router(favorites_router)
    app.include_router(recipes_router)
    app.include_router(operations_router)
    if bench_endpoint:
        app.include_router(bench_router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(TraceIdMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app


def _lifespan_for(
    settings: Settings, metrics: BackendMetrics, catalog: RecipeCatalog
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            state = await _open(settings, metrics, catalog)
        except Exception as exc:
            app.state.startup_error = exc
            raise
        app.state.backend = state
        try:
            yield
        finally:
            await _close(state)

    return lifespan


async def _open(
    settings: Settings, metrics: BackendMetrics, catalog: RecipeCatalog
) -> BackendState:
    engine = make_engine(settings.database_url)
    publisher = FavoritePublisher(
        bootstrap_servers=settings.bootstrap_or_default,
        topic=settings.favorites_topic,
        dead_letter_topic=settings.dead_letter_topic,
        partitions=settings.favorites_topic_partitions,
        publish_timeout=settings.publish_timeout_seconds,
        metrics=metrics,
    )
    try:
        await run_in_threadpool(_create_schema, engine)
        await run_in_threadpool(store_catalog, engine, catalog)
        await publisher.start()
    except BaseException:
        await publisher.stop()
        engine.dispose()
        raise
    logger.info(
        "backend ready: topic=%s partitions=%d",
        settings.favorites_topic,
        settings.favorites_topic_partitions,
    )
    return BackendState(
        publisher=publisher, engine=engine, catalog=catalog, metrics=metrics
    )


def _create_schema(engine: Engine) -> None:
    """Create missing tables; tolerate another process creating them meanwhile."""
    try:
        create_schema(engine)
    except OperationalError as exc:
        if "already exists" not in str(exc):
            raise
        logger.info("tables were created concurrently by another process")
        create_schema(engine)


async def _close(state: BackendState) -> None:
    try:
        await state.publisher.stop()
    finally:
        state.engine.dispose()
        logger.info("backend stopped")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with where and what, never echoing the submitted values."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in errors
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the database is locked or unreachable; the driver text is logged."""
    logger.warning(
        "database unavailable: %s %s: %s", request.method, request.url.path, exc
    )
    return JSONResponse(
        status_code=503,
        content={"detail": "the database is busy or unreachable; retry later"},
        headers={"Retry-After": "1"},
    )
