"""Reading stored favourites and turning interactions into events.

Routes hand the work to these plain functions, which are tested directly.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.api_models import FavoriteRequest, StoredFavorite
from backend.catalog import RecipeCatalog
from pipeline_core.events import EventType, FavoriteEvent, Source
from pipeline_core.storage import Favorite


def added_event(request: FavoriteRequest, trace_id: str) -> FavoriteEvent:
    """The ``favorite.added`` event for an accepted request."""
    return FavoriteEvent(
        type=EventType.ADDED,
        user_id=request.user_id,
        user_name=request.user_name,
        recipe_id=request.recipe_id,
        guild_id=request.guild_id,
        source=request.source,
        trace_id=trace_id,
    )


def removed_event(
    *,
    user_id: str,
    recipe_id: str,
    user_name: str | None,
    guild_id: str | None,
    source: Source,
    trace_id: str,
) -> FavoriteEvent:
    """The ``favorite.removed`` event; the user name defaults to the user id."""
    return FavoriteEvent(
        type=EventType.REMOVED,
        user_id=user_id,
        user_name=user_name or user_id,
        recipe_id=recipe_id,
        guild_id=guild_id,
        source=source,
        trace_id=trace_id,
    )


def read_user_favorites(
    engine: Engine, catalog: RecipeCatalog, user_id: str, limit: int
) -> list[StoredFavorite]:
    """A user's stored favourites with recipe titles, newest first.

    Blocking: call it from a worker thread, not the event loop.
    """
    statement = (
        select(Favorite)
        .where(Favorite.user_id == user_id)
        .order_by(col(Favorite.occurred_at).desc(), col(Favorite.stored_at).desc())
        .limit(limit)
    )
    with Session(engine) as session:
        rows = session.exec(statement).all()
    favorites = []
    for row in rows:
        recipe = catalog.get(row.recipe_id)
        favorites.append(
            StoredFavorite(
                recipe_id=row.recipe_id,
                title=recipe.title if recipe is not None else None,
                user_name=row.user_name,
                guild_id=row.guild_id,
                source=row.source,
                event_id=row.event_id,
                trace_id=row.trace_id,
                occurred_at=row.occurred_at,
                stored_at=row.stored_at,
            )
        )
    return favorites
