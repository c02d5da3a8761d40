"""A generated-input test over the served OpenAPI schema (seeded, standard library).

For every operation in ``/openapi.json`` it sends inputs made from the schema: path
and query parameters and JSON bodies, mostly valid, some mutated (wrong types,
out-of-range numbers, odd Unicode, missing and extra fields, no token). Every answer
must be one of the operation's documented status codes, never a 500.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any
from urllib.parse import quote

import httpx

from tests.backend.conftest import AUTH

SEED = 20261204
CASES_PER_OPERATION = 40
_DIGITS_PATTERN = re.compile(r"^\^\[0-9\]\{(\d+),(\d+)\}\$$")
_ODD_TEXT = ["", " ", "é", "👩‍👩‍👧", "\u202e", "0" * 300, "a/b", "%00", "null"]
_JUNK: list[Any] = [None, True, -1, 3.5, [], {}, "x" * 200, "\uff11\uff12\uff13", "-7"]


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _value(schema: dict[str, Any], spec: dict[str, Any], rng: random.Random) -> Any:
    """A value that satisfies ``schema`` (for the shapes this API uses)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return _value(rng.choice(schema["anyOf"]), spec, rng)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return None
    if kind == "integer":
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 1000)
        return rng.randint(low, high)
    if kind == "object":
        return {
            name: _value(prop, spec, rng)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", []) or rng.random() < 0.5
        }
    return _string(schema, rng)


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    match = _DIGITS_PATTERN.match(schema.get("pattern", ""))
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if high <= 9 and rng.random() < 0.5:
            return str(rng.randint(1, 130))  # mostly catalog recipe ids
        return "".join(rng.choices(string.digits, k=rng.randint(low, high)))
    low = schema.get("minLength", 0)
    high = min(schema.get("maxLength", 30), 30)
    alphabet = string.ascii_letters + "éüñ🍜 -_"
    return "".join(rng.choices(alphabet, k=rng.randint(max(low, 1), max(high, 1))))


def _mutate(value: Any, rng: random.Random) -> Any:
    """Maybe replace ``value`` with something the schema does not allow."""
    if rng.random() < 0.7:
        return value
    return rng.choice(_JUNK + _ODD_TEXT)


def _request(
    path: str,
    method: str,
    operation: dict[str, Any],
    spec: dict[str, Any],
    rng: random.Random,
) -> dict[str, Any]:
    url = path
    params: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        value = _mutate(_value(parameter["schema"], spec, rng), rng)
        text = "" if value is None else str(value)
        if parameter["in"] == "path":
            # An encoded "/" names another resource (routing answers 404 "Not
            # Found" before any route runs), so path values never carry one.
            text = text.replace("/", "-")
            url = url.replace(
                "{" + parameter["name"] + "}", quote(text, safe="") or "0"
            )
        elif parameter["in"] == "query" and (
            parameter.get("required") or rng.random() < 0.6
        ):
            params[parameter["name"]] = text
    request: dict[str, Any] = {"method": method.upper(), "url": url, "params": params}
    body_spec = operation.get("requestBody")
    if body_spec is not None:
        schema = body_spec["content"]["application/json"]["schema"]
        body = _value(schema, spec, rng)
        for name in list(body):
            body[name] = _mutate(body[name], rng)
        if rng.random() < 0.1:
            body["unexpected"] = "field"
        if rng.random() < 0.1 and body:
            del body[rng.choice(list(body))]
        request["json"] = body
    request["headers"] = AUTH if rng.random() < 0.9 else {}
    return request


async def test_every_operation_answers_only_documented_codes_never_500(
    client: httpx.AsyncClient,
) -> None:
    """Generated inputs for every route in /openapi.json get documented answers."""
    spec = (await client.get("/openapi.json")).json()
    rng = random.Random(SEED)
    undocumented: list[str] = []
    seen: set[int] = set()
    operations = 0

    for path, methods in sorted(spec["paths"].items()):
        for method, operation in sorted(methods.items()):
            operations += 1
            documented = {int(code) for code in operation["responses"]}
            for _ in range(CASES_PER_OPERATION):
                request = _request(path, method, operation, spec, rng)
                response = await client.request(**request)
                seen.add(response.status_code)
                if response.status_code not in documented:
                    undocumented.append(
                        f"{request['method']} {request['url']} {request['params']}"
                        f" {request.get('json')!r} -> {response.status_code}"
                    )

    assert operations >= 8
    assert {200, 202, 401, 404, 422} <= seen
    assert undocumented == []


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    """/docs serves the interactive documentation of the API."""
    response = await client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()
