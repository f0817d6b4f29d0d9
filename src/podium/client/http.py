"""The HTTP side of the SDK: one `httpx.AsyncClient`, JSON in and out, errors mapped.

`HttpTransport.request` returns the decoded JSON object of a 2xx answer and
raises `PodiumAPIError` for every other status. Network failures surface as
the `httpx.HTTPError` subclasses httpx raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from podium.client.errors import PodiumAPIError

JSON = dict[str, Any]
DEFAULT_TIMEOUT_S = 15.0
USER_AGENT = "podium-python-sdk"


def path_segment(value: str) -> str:
    """Quote one path segment (ids are `[A-Za-z0-9_-]`, but never build a path from raw input)."""
    return quote(value, safe="")


class HttpTransport:
    """JSON requests against `base_url` with a bearer token.

    When `http` is given the caller owns it (it is not closed here) and its
    transport is used as is: pass an `httpx.AsyncClient(transport=httpx.ASGITransport(app))`
    to run the SDK against an in-process app. Relative paths are joined to
    `base_url`, so `http` needs no base URL of its own.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._owned = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> JSON:
        """Send one request; the decoded JSON object of a 2xx answer, else `PodiumAPIError`."""
        response = await self._http.request(
            method,
            self.base_url + path,
            json=dict(json) if json is not None else None,
            params=dict(params) if params else None,
            headers=self._headers,
        )
        return decode(response)

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()


def decode(response: httpx.Response) -> JSON:
    """The JSON object of a 2xx response; `PodiumAPIError` for anything else."""
    try:
        body: object = response.json()
    except ValueError:
        body = None
    if not response.is_success:
        raise PodiumAPIError.from_body(response.status_code, body, response.text[:200])
    if not isinstance(body, dict):
        raise PodiumAPIError(
            response.status_code,
            "invalid_response",
            "expected a JSON object from the server",
            {"body": response.text[:200]},
        )
    return body
