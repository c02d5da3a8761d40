"""The recipe catalog shipped with the project (``backend/recipes.json``).

The catalog is read once per app from package data, kept in memory for lookups and
searches, and written to the ``Recipe`` table at start so that other readers of the
database (the dashboard, ad-hoc SQL) can join favourites with titles. Writing it is
idempotent: rows are inserted or updated by id, never duplicated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlmodel import Session

from pipeline_core.events import RecipeId
from pipeline_core.storage import Recipe

logger = logging.getLogger(__name__)

CATALOG_RESOURCE = "recipes.json"


class CatalogError(ValueError):
    """The shipped catalog file is missing or malformed."""


class CatalogRecipe(BaseModel):
    """One recipe of the catalog, as the API shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RecipeId
    title: str = Field(min_length=1, max_length=200)
    cuisine: str = Field(min_length=1, max_length=60)
    minutes: int = Field(gt=0)
    tags: tuple[str, ...]
    ingredients: tuple[str, ...] = Field(min_length=1)


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    recipes: list[CatalogRecipe] = Field(min_length=1)


class RecipeCatalog:
    """The recipes, by id, with a case-insensitive search."""

    def __init__(self, recipes: Iterable[CatalogRecipe]) -> None:
        """Index ``recipes``; ids must be unique.

        Raises:
            CatalogError: two recipes share an id.
        """
        self._by_id: dict[str, CatalogRecipe] = {}
        for recipe in recipes:
            if recipe.id in self._by_id:
                raise CatalogError(f"recipe id {recipe.id} appears twice")
            self._by_id[recipe.id] = recipe

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, recipe_id: str) -> CatalogRecipe | None:
        """The recipe with ``recipe_id``, or ``None`` when the catalog has none."""
        return self._by_id.get(recipe_id)

    def search(self, query: str | None, limit: int) -> list[CatalogRecipe]:
        """Recipes whose title, cuisine, tags or ingredients contain every word.

        Args:
            query: words to look for, case-insensitive; empty or ``None`` lists all.
            limit: at most this many recipes, in id order.
        """
        words = (query or "").casefold().split()
        found = [
            recipe
            for recipe in sorted(self._by_id.values(), key=lambda r: int(r.id))
            if all(word in _haystack(recipe) for word in words)
        ]
        return found[:limit]

    def all(self) -> list[CatalogRecipe]:
        """Every recipe, in id order."""
        return sorted(self._by_id.values(), key=lambda r: int(r.id))


def _haystack(recipe: CatalogRecipe) -> str:
    parts = [recipe.title, recipe.cuisine, *recipe.tags, *recipe.ingredients]
    return "\n".join(parts).casefold()


def load_catalog(raw: bytes | None = None) -> RecipeCatalog:
    """Read the catalog from package data (or from ``raw`` JSON bytes).

    Raises:
        CatalogError: the file is missing, not JSON, or not the expected shape.
    """
    if raw is None:
        try:
            raw = resources.files("backend").joinpath(CATALOG_RESOURCE).read_bytes()
        except OSError as exc:
            raise CatalogError(
                f"cannot read backend/{CATALOG_RESOURCE} ({exc.strerror});"
                " reinstall the package"
            ) from None
    try:
        parsed = _CatalogFile.model_validate(json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise CatalogError(f"backend/{CATALOG_RESOURCE} is malformed: {exc}") from None
    return RecipeCatalog(parsed.recipes)


def store_catalog(engine: Engine, catalog: RecipeCatalog) -> int:
    """Insert or update every catalog recipe in the ``Recipe`` table (idempotent).

    Blocking: call it from a worker thread, not the event loop.

    Returns:
        The number of recipes written.
    """
    with Session(engine) as session:
        for recipe in catalog.all():
            session.merge(
                Recipe(
                    id=recipe.id,
                    title=recipe.title,
                    cuisine=recipe.cuisine,
                    minutes=recipe.minutes,
                    tags=",".join(recipe.tags),
                    ingredients=";".join(recipe.ingredients),
                )
            )
        session.commit()
    logger.info("recipe catalog stored: %d recipes", len(catalog))
    return len(catalog)
