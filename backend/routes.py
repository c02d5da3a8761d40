"""The HTTP routes. Their docstrings are the text users read at ``/docs``."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from backend.api_models import (
    ErrorBody,
    FavoriteRequest,
    Health,
    PublishAccepted,
    RecipeList,
    RecipeOut,
    UserFavorites,
)
from backend.catalog import CatalogRecipe
from backend.favorites import added_event, read_user_favorites, removed_event
from backend.metrics import METRICS_CONTENT_TYPE
from backend.publisher import PublishUnavailable
from backend.security import TokenCheckedRoute, TokenRequired
from backend.state import BackendState
from pipeline_core.events import FavoriteEvent, Source, encode_event

logger = logging.getLogger(__name__)

#: Bound on each readiness probe (Kafka, database).
READINESS_TIMEOUT_S = 2.0

SNOWFLAKE_PATTERN = r"^[0-9]{1,20}$"
RECIPE_ID_PATTERN = r"^[0-9]{1,9}$"

UserIdPath = Annotated[
    str, Path(pattern=SNOWFLAKE_PATTERN, description="Discord user id (1-20 digits).")
]
RecipeIdPath = Annotated[
    str, Path(pattern=RECIPE_ID_PATTERN, description="Recipe id of the catalog.")
]


async def get_state(request: Request) -> BackendState:
    """The running app's state (set by the lifespan).

    ``async`` so that FastAPI calls it on the event loop: a plain ``def``
    dependency costs a worker-thread round trip on every request.
    """
    state: BackendState = request.app.state.backend
    return state


State = Annotated[BackendState, Depends(get_state)]


async def trace_id_of(request: Request) -> str:
    """The request's trace id, set by the trace id middleware (on the loop)."""
    trace_id: str = request.state.trace_id
    return trace_id


TraceId = Annotated[str, Depends(trace_id_of)]

_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorBody, "description": "Unknown recipe."},
    413: {"model": ErrorBody, "description": "Body over 16 KiB."},
    503: {"model": ErrorBody, "description": "Kafka did not acknowledge in time."},
}

favorites_router = APIRouter(
    prefix="/v1", tags=["favorites"], route_class=TokenCheckedRoute
)
recipes_router = APIRouter(prefix="/v1", tags=["recipes"])
operations_router = APIRouter(tags=["operations"])


def _known_recipe(state: BackendState, recipe_id: str) -> CatalogRecipe:
    recipe = state.catalog.get(recipe_id)
    if recipe is None:
        raise HTTPException(
            status_code=404,
            detail=f"recipe {recipe_id} is not in the catalog;"
            " list recipes with GET /v1/recipes?q=",
        )
    return recipe


async def _publish(state: BackendState, event: FavoriteEvent) -> PublishAccepted:
    try:
        ack = await state.publisher.publish(event)
    except PublishUnavailable as exc:
        retry_after = max(1, math.ceil(state.publisher.publish_timeout))
        raise HTTPException(
            status_code=503,
            detail=f"the event was not accepted: {exc}; retry later",
            headers={"Retry-After": str(retry_after)},
        ) from None
    logger.info(
        "event accepted: type=%s topic=%s partition=%d offset=%d event_id=%s"
        " trace_id=%s",
        event.type,
        ack.topic,
        ack.partition,
        ack.offset,
        event.event_id,
        event.trace_id,
    )
    return PublishAccepted(
        event_id=event.event_id,
        trace_id=event.trace_id,
        topic=ack.topic,
        partition=ack.partition,
        offset=ack.offset,
    )


@favorites_router.post(
    "/favorites",
    status_code=202,
    response_model=PublishAccepted,
    dependencies=[TokenRequired],
    responses=_WRITE_ERRORS,
)
async def add_favorite(
    body: FavoriteRequest, state: State, trace_id: TraceId
) -> PublishAccepted:
    """Mark a recipe as a user's favourite.

    Answers 202 once Kafka acknowledged the event, with the partition and offset
    where it is stored. The consumer then stores the favourite.
    """
    _known_recipe(state, body.recipe_id)
    return await _publish(state, added_event(body, trace_id))


@favorites_router.delete(
    "/favorites/{user_id}/{recipe_id}",
    status_code=202,
    response_model=PublishAccepted,
    dependencies=[TokenRequired],
    responses=_WRITE_ERRORS,
)
async def remove_favorite(
    user_id: UserIdPath,
    recipe_id: RecipeIdPath,
    state: State,
    trace_id: TraceId,
    user_name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    guild_id: Annotated[str | None, Query(pattern=SNOWFLAKE_PATTERN)] = None,
    source: Source = Source.API,
) -> PublishAccepted:
    """Remove a recipe from a user's favourites.

    Answers 202 once Kafka acknowledged the `favorite.removed` event.
    """
    _known_recipe(state, recipe_id)
    event = removed_event(
        user_id=user_id,
        recipe_id=recipe_id,
        user_name=user_name,
        guild_id=guild_id,
        source=source,
        trace_id=trace_id,
    )
    return await _publish(state, event)


@favorites_router.get(
    "/users/{user_id}/favorites",
    response_model=UserFavorites,
    dependencies=[TokenRequired],
    responses={
        401: {"model": ErrorBody, "description": "Missing or wrong token."},
        503: {"model": ErrorBody, "description": "The database is unavailable."},
    },
)
async def list_user_favorites(
    user_id: UserIdPath,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UserFavorites:
    """A user's stored favourites with recipe titles, newest first."""
    favorites = await run_in_threadpool(
        read_user_favorites, state.engine, state.catalog, user_id, limit
    )
    return UserFavorites(user_id=user_id, favorites=favorites)


def _recipe_out(recipe: CatalogRecipe) -> RecipeOut:
    return RecipeOut(
        id=recipe.id,
        title=recipe.title,
        cuisine=recipe.cuisine,
        minutes=recipe.minutes,
        tags=list(recipe.tags),
        ingredients=list(recipe.ingredients),
    )


@recipes_router.get("/recipes", response_model=RecipeList)
async def search_recipes(
    state: State,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RecipeList:
    """Search the recipe catalog: every word of `q` must appear in the title,
    cuisine, tags or ingredients. Without `q`, list the catalog."""
    found = state.catalog.search(q, limit)
    return RecipeList(count=len(found), recipes=[_recipe_out(r) for r in found])


@recipes_router.get(
    "/recipes/{recipe_id}",
    response_model=RecipeOut,
    responses={404: {"model": ErrorBody, "description": "Unknown recipe."}},
)
async def get_recipe(recipe_id: RecipeIdPath, state: State) -> RecipeOut:
    """One recipe of the catalog."""
    return _recipe_out(_known_recipe(state, recipe_id))


@operations_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers HTTP."""
    return Health(status="ok")


@operations_router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Kafka or the database is down."}},
)
async def readyz(state: State, response: Response) -> Health:
    """Readiness: Kafka and the database both answer (each check is bounded)."""
    kafka, database = await asyncio.gather(
        _kafka_status(state), _database_status(state)
    )
    ready = kafka == "ok" and database == "ok"
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = "1"
    return Health(
        status="ready" if ready else "unavailable", kafka=kafka, database=database
    )


async def _kafka_status(state: BackendState) -> str:
    try:
        await state.publisher.check(READINESS_TIMEOUT_S)
    except PublishUnavailable as exc:
        return f"unavailable: {exc}"
    return "ok"


def _select_one(state: BackendState) -> None:
    with state.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def _database_status(state: BackendState) -> str:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await run_in_threadpool(_select_one, state)
    except TimeoutError:
        return f"unavailable: no answer within {READINESS_TIMEOUT_S:g}s"
    except Exception as exc:  # noqa: BLE001 - any driver error means "not ready"
        return f"unavailable: {type(exc).__name__}"
    return "ok"


@operations_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {METRICS_CONTENT_TYPE: {}}}},
)
async def metrics(state: State) -> Response:
    """Prometheus metrics: requests by route and status, publish latency, failures."""
    return Response(state.metrics.render(), media_type=METRICS_CONTENT_TYPE)


bench_router = APIRouter(
    prefix="/bench", include_in_schema=False, route_class=TokenCheckedRoute
)


@bench_router.post(
    "/favorites-unpublished",
    status_code=202,
    response_model=PublishAccepted,
    dependencies=[TokenRequired],
)
async def add_favorite_unpublished(
    body: FavoriteRequest, state: State, trace_id: TraceId
) -> PublishAccepted:
    """The benchmark's baseline: everything ``POST /v1/favorites`` does but publish."""
    _known_recipe(state, body.recipe_id)
    event = added_event(body, trace_id)
    encode_event(event)
    return PublishAccepted(
        event_id=event.event_id,
        trace_id=event.trace_id,
        topic=state.publisher.topic,
        partition=-1,
        offset=-1,
    )
