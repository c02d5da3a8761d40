"""What a running backend app holds: created by the lifespan, read by the routes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from backend.catalog import RecipeCatalog
from backend.metrics import BackendMetrics
from backend.publisher import FavoritePublisher


@dataclass(frozen=True)
class BackendState:
    """The app's clients and data, alive between lifespan start and stop."""

    publisher: FavoritePublisher
    engine: Engine
    catalog: RecipeCatalog
    metrics: BackendMetrics
