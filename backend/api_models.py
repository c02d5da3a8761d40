"""What the HTTP API accepts and answers (request and response bodies).

API models are separate from the storage tables and from the Kafka event: a table
model never doubles as API input.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pipeline_core.events import RecipeId, Snowflake, Source, UserName


class FavoriteRequest(BaseModel):
    """A user marks a recipe as a favourite."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "123456789012345678",
                    "user_name": "Zoë 🍜",
                    "recipe_id": "8",
                    "guild_id": "987654321098765432",
                    "source": "api",
                }
            ]
        },
    )

    user_id: Snowflake = Field(description="Discord user id: 1 to 20 decimal digits.")
    user_name: UserName = Field(description="Display name, 1 to 100 characters.")
    recipe_id: RecipeId = Field(description="Id of a recipe of the catalog.")
    guild_id: Snowflake | None = Field(
        default=None, description="Discord server id, when the interaction had one."
    )
    source: Source = Field(default=Source.API, description="Where it came from.")


class PublishAccepted(BaseModel):
    """The broker acknowledged the event: where it is stored on the topic."""

    event_id: uuid.UUID
    trace_id: str
    topic: str
    partition: int
    offset: int


class StoredFavorite(BaseModel):
    """A favourite as the consumer stored it, with the recipe's title."""

    recipe_id: str
    title: str | None = Field(description="None when the recipe left the catalog.")
    user_name: str
    guild_id: str | None
    source: str
    event_id: str
    trace_id: str
    occurred_at: datetime
    stored_at: datetime


class UserFavorites(BaseModel):
    """One user's stored favourites, newest first."""

    user_id: str
    favorites: list[StoredFavorite]


class RecipeOut(BaseModel):
    """One recipe of the catalog."""

    id: str
    title: str
    cuisine: str
    minutes: int
    tags: list[str]
    ingredients: list[str]


class RecipeList(BaseModel):
    """Recipes matching a search, in id order."""

    count: int
    recipes: list[RecipeOut]


class Health(BaseModel):
    """Liveness or readiness, with the state of each dependency."""

    status: str
    kafka: str | None = None
    database: str | None = None


class ErrorBody(BaseModel):
    """An error answer: ``detail`` says what went wrong and what to do."""

    detail: str
