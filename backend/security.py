"""The bearer token that guards the API, checked in constant time.

The token is never logged and never put in an error body. When ``API_TOKEN`` is
unset, ``recipe-pipeline backend`` makes one with :func:`generate_token` and writes
it to a file only its user can read (:func:`write_token_file`).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="The API_TOKEN of the stack, sent as `Authorization: Bearer <token>`.",
)


def generate_token() -> str:
    """A fresh random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to a new file ``path`` readable by its owner only (0600).

    Raises:
        FileExistsError: ``path`` exists already (it is never overwritten).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")


def token_matches(presented: str | None, expected: bytes) -> bool:
    """Whether ``presented`` is the expected token, compared in constant time."""
    candidate = (presented or "").encode("utf-8")
    return hmac.compare_digest(candidate, expected) and presented is not None


def _refuse() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="a valid bearer token is required: send 'Authorization: Bearer"
        " <API_TOKEN>' with the token the stack was started with",
        headers={"WWW-Authenticate": "Bearer"},
    )


def presented_token(request: Request) -> str | None:
    """The bearer token of ``request``'s Authorization header, if any."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Refuse the request with ``401`` unless it carries the API token.

    ``async`` so that it runs on the event loop, not in a worker thread.
    """
    expected: bytes = request.app.state.api_token
    presented = credentials.credentials if credentials is not None else None
    if not token_matches(presented, expected):
        raise _refuse()


TokenRequired = Depends(require_token)


class TokenCheckedRoute(APIRoute):
    """A route that checks the API token before FastAPI reads or parses the body.

    Without it a malformed body would answer ``422`` before the token dependency
    runs; with it, a caller without the token learns nothing but ``401``. Routes
    also declare :data:`TokenRequired`, which documents the scheme in OpenAPI.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the token check."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if not token_matches(presented_token(request), request.app.state.api_token):
                raise _refuse()
            return await handler(request)

        return checked
