"""The bot's HTTP client for the recipe-pipeline backend.

One :class:`BackendClient` per bot, opened in ``setup_hook`` and closed with the
bot. Every call carries the bearer token (when configured) and an ``X-Trace-Id``
derived from the Discord interaction or message id, so one command can be followed
through every hop. Connection failures, timeouts and ``503`` answers are retried a
bounded number of times with exponential backoff, honouring ``Retry-After`` up to
:attr:`RetryPolicy.max_delay`; everything else fails at once with a
:class:`BackendError` subclass whose message a Discord user can read. Messages never
contain the token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from pipeline_core.events import Source

logger = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=BaseModel)


class BackendError(Exception):
    """The backend call failed; ``str(error)`` is a reply a Discord user understands."""


class RecipeNotFound(BackendError):
    """The recipe id is not in the catalog (HTTP 404)."""


class InputRejected(BackendError):
    """The backend refused the input as invalid (HTTP 422)."""


class NotAuthorized(BackendError):
    """The backend refused the bot's token (HTTP 401); an operator must fix it."""


class BackendUnavailable(BackendError):
    """The backend could not be reached or answered 503 after every retry."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it reports the backend unavailable.

    Attributes:
        attempts: total attempts per call (the first one included).
        base_delay: the wait before the second attempt, doubled each time (seconds).
        max_delay: the longest single wait, also the cap on ``Retry-After``.
    """

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 2.0


class Recipe(BaseModel):
    """A recipe of the catalog, as the backend answers it."""

    id: str
    title: str
    cuisine: str = ""
    minutes: int = 0


class Favorite(BaseModel):
    """One stored favourite of a user."""

    recipe_id: str
    title: str | None = None


class Accepted(BaseModel):
    """The backend accepted a favourite change (HTTP 202)."""

    event_id: str
    trace_id: str
    topic: str
    partition: int
    offset: int


#: Timeouts per call: connecting is quick or hopeless; the backend may take its
#: publish deadline to answer a write.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=3.0)


class BackendClient:
    """Calls the backend's HTTP API on behalf of Discord users.

    Args:
        base_url: the backend's root URL (``BACKEND_URL``).
        api_token: the bearer token for writes (``API_TOKEN``), or ``None``.
        retry: the retry policy for connection errors and 503s.
        timeout: httpx timeouts per attempt.
        transport: an httpx transport to use instead of the network one.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str | None,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "recipe-pipeline-bot"}
        if api_token:
            headers["Authorization"] = f"Bearer {api_token}"
        self.base_url = base_url
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        await self._http.aclose()

    async def get_recipe(self, recipe_id: str, *, trace_id: str) -> Recipe:
        """Look one recipe up; raises :class:`RecipeNotFound` for an unknown id."""
        data = await self._call("GET", f"/v1/recipes/{quote(recipe_id)}", trace_id)
        return _parse(Recipe, data)

    async def search_recipes(self, query: str, *, trace_id: str) -> list[Recipe]:
        """Recipes whose title, cuisine, tags or ingredients match ``query``."""
        data = await self._call("GET", "/v1/recipes", trace_id, params={"q": query})
        return [_parse(Recipe, item) for item in _field(data, "recipes")]

    async def add_favorite(
        self,
        *,
        user_id: str,
        user_name: str,
        recipe_id: str,
        guild_id: str | None,
        source: Source,
        trace_id: str,
    ) -> Accepted:
        """Ask the backend to record a favourite; returns once it answered 202."""
        body = {
            "user_id": user_id,
            "user_name": user_name,
            "recipe_id": recipe_id,
            "guild_id": guild_id,
            "source": source.value,
        }
        data = await self._call("POST", "/v1/favorites", trace_id, json=body)
        return _parse(Accepted, data)

    async def remove_favorite(
        self, *, user_id: str, recipe_id: str, trace_id: str
    ) -> Accepted:
        """Ask the backend to remove a favourite; returns once it answered 202."""
        path = f"/v1/favorites/{quote(user_id)}/{quote(recipe_id)}"
        return _parse(Accepted, await self._call("DELETE", path, trace_id))

    async def list_favorites(self, user_id: str, *, trace_id: str) -> list[Favorite]:
        """The user's stored favourites, newest first."""
        data = await self._call(
            "GET", f"/v1/users/{quote(user_id)}/favorites", trace_id
        )
        return [_parse(Favorite, item) for item in _field(data, "favorites")]

    async def _call(self, method: str, path: str, trace_id: str, **kwargs: Any) -> Any:
        headers = {"X-Trace-Id": trace_id}
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self._http.request(
                    method, path, headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
                delay = self._backoff(attempt)
            else:
                if response.status_code != 503:
                    return _answer(method, path, response)
                reason = "503"
                delay = self._backoff(attempt, response.headers.get("Retry-After"))
            if attempt == self.retry.attempts:
                logger.warning(
                    "backend %s %s failed after %d attempt(s) (%s), trace %s",
                    method,
                    path,
                    attempt,
                    reason,
                    trace_id,
                )
                break
            logger.info(
                "backend %s %s attempt %d failed (%s), retrying in %.2fs, trace %s",
                method,
                path,
                attempt,
                reason,
                delay,
                trace_id,
            )
            await asyncio.sleep(delay)
        raise BackendUnavailable(
            "The recipe service is not reachable right now. Please try again in a"
            " minute."
        )

    def _backoff(self, attempt: int, retry_after: str | None = None) -> float:
        delay: float = self.retry.base_delay * 2.0 ** (attempt - 1)
        if retry_after is not None:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                logger.debug(
                    "ignoring a Retry-After that is not seconds: %r", retry_after
                )
        return min(delay, self.retry.max_delay)


def _answer(method: str, path: str, response: httpx.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return response.json()
        except ValueError:
            raise BackendError(
                "The recipe service sent an answer I could not read. Please try"
                " again later."
            ) from None
    detail = _detail(response)
    logger.warning("backend %s %s answered %d: %s", method, path, status, detail)
    if status == 404:
        raise RecipeNotFound("I can't find that recipe. Check its number with search.")
    if status == 422:
        raise InputRejected(f"The recipe service refused that input: {detail}")
    if status in (401, 403):
        raise NotAuthorized(
            "The bot is not allowed to talk to the recipe service. Please tell an"
            " admin (the bot's API token is wrong)."
        )
    raise BackendError(
        f"The recipe service failed (HTTP {status}). Please try again later."
    )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no details"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail[:200]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg", "invalid input"))[:200]
    return "no details"


def _field(data: Any, name: str) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get(name), list):
        return list(data[name])
    raise BackendError(
        "The recipe service sent an answer I could not read. Please try again later."
    )


def _parse(model: type[_Model], data: Any) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError:
        logger.warning("backend answer does not fit %s", model.__name__)
        raise BackendError(
            "The recipe service sent an answer I could not read. Please try again"
            " later."
        ) from None
