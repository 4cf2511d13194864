"""python-ovh set-up for the ovh provider: endpoint URLs, OAuth2 hygiene, errors, rate limit.

Kept apart from `ovh.py` (the record logic) because everything here works around python-ovh
1.2 details, each documented where it is handled:
- `Client(endpoint=URL)` raises InvalidRegion: see `_url_registered`;
- OAuth2 tokens are fetched without a timeout and requests-oauthlib logs tokens and the Basic
  auth header at DEBUG: see `prepare` and `make_client`;
- oauthlib refuses plain http unless OAUTHLIB_INSECURE_TRANSPORT is set: set only for a
  loopback test endpoint;
- its exceptions become ProviderErrors with a truthful kind and `retryable` in `map_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import ovh
import ovh.client
import ovh.exceptions
import ovh.oauth2
import requests

from failover.config.types import OvhProviderConfig, Secret
from failover.providers.base import ProviderError
from failover.providers.retry import kind_of_status

TOKEN_PATH = "/auth/oauth2/token"  # where a URL endpoint serves OAuth2 (www.ovh.com layout)
_registry_lock = threading.Lock()


class RateLimiter:
    """Token bucket: `rate` requests per second on average, bursts of up to one second's worth.

    OVH throttles per account (ExternalDNS defaults to 20 requests/s), and a mass failover
    would otherwise fire hundreds of calls at once and spend its retries on 429s."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _url_registered(url: str) -> Iterator[None]:
    """Let `ovh.Client(endpoint=url)` accept a base URL, as if it were an endpoint name.

    python-ovh looks names up in its module-level ENDPOINTS and OAUTH2_TOKEN_URLS and raises
    InvalidRegion for anything else. We swap those two globals for extended *copies* for the
    duration of the constructor only (the originals are never mutated), so python-ovh still
    runs all its own checks and credential lookup (`OVH_*`, then the `[<url>]` section of
    ovh.conf). Building with a placeholder name and setting the private `_endpoint` afterwards
    would read credentials from the placeholder's ovh.conf section and refuse OAuth2."""
    parts = urllib.parse.urlsplit(url)
    token_url = f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}"
    with _registry_lock:
        endpoints, token_urls = ovh.client.ENDPOINTS, ovh.client.OAUTH2_TOKEN_URLS
        ovh.client.ENDPOINTS = {**endpoints, url: url}
        ovh.client.OAUTH2_TOKEN_URLS = {**token_urls, url: token_url}
        try:
            yield
        finally:
            ovh.client.ENDPOINTS, ovh.client.OAUTH2_TOKEN_URLS = endpoints, token_urls


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def make_client(config: OvhProviderConfig) -> Any:
    """The python-ovh client for `config`; credentials not given fall back to python-ovh's own
    conventions. Raises ProviderError(kind="config") naming the problem, never a secret."""
    endpoint = config.endpoint
    url = "://" in endpoint
    try:
        with _url_registered(endpoint) if url else contextlib.nullcontext():
            client = ovh.Client(
                endpoint=endpoint,
                application_key=_reveal(config.application_key),
                application_secret=_reveal(config.application_secret),
                consumer_key=_reveal(config.consumer_key),
                client_id=_reveal(config.client_id),
                client_secret=_reveal(config.client_secret),
                timeout=(config.timeout, config.timeout),  # python-ovh's default is 180 s
            )
    except ovh.exceptions.APIError as exc:
        reason = exc.args[0] if exc.args else type(exc).__name__
        raise ProviderError(
            f"ovh {config.name}: cannot set up the OVH client: {reason}", kind="config"
        ) from None
    if client._oauth2 is None:
        return client
    # requests-oauthlib logs the Basic auth header and the tokens at DEBUG.
    for name in ("requests_oauthlib", "oauthlib"):
        quiet = logging.getLogger(name)
        if quiet.level < logging.INFO:
            quiet.setLevel(logging.INFO)
    if url and endpoint.startswith("http://"):
        if not is_loopback_url(endpoint):
            raise ProviderError(
                f"ovh {config.name}: OAuth2 needs an https:// endpoint "
                "(plain http is accepted only for a loopback test endpoint)",
                kind="config",
            )
        # oauthlib refuses http unless this is set. It is process-wide, but only matters for
        # plain-http OAuth2 URLs, and we refuse those above unless they are loopback.
        if not os.environ.get("OAUTHLIB_INSECURE_TRANSPORT"):
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    return client


def prepare(client: Any) -> None:
    """Blocking, once, before concurrent calls: fetch what python-ovh would fetch lazily in
    every racing thread (the `/auth/time` delta, or an OAuth2 token).

    python-ovh 1.2 fetches OAuth2 tokens with no timeout at all, so a hung token endpoint
    would hang a worker thread forever: we fetch the first token ourselves with the client's
    timeout, let python-ovh build its session around it, and give its refresh the timeout."""
    try:
        oauth = client._oauth2
        if oauth is None:
            client.time_delta  # noqa: B018 - a lazy property: this fetches /auth/time
            return
        if oauth._session is None:
            fetcher = ovh.oauth2.RefreshOAuth2Session(
                token_url=oauth.token_url,
                client=ovh.oauth2.BackendApplicationClient(
                    client_id=oauth.client_id, scope=["all"]
                ),
            )
            oauth._token = fetcher.fetch_token(
                token_url=oauth.token_url,
                client_id=oauth.client_id,
                client_secret=oauth.client_secret,
                timeout=client._timeout,
            )
            oauth.session.auto_refresh_kwargs["timeout"] = client._timeout
    except requests.RequestException as exc:  # raised outside python-ovh's own wrapping
        raise ovh.exceptions.HTTPError("Low HTTP request failed error", exc) from exc


def map_error(where: str, exc: Exception) -> ProviderError:
    """python-ovh exception -> ProviderError with a truthful kind and `retryable`.

    The message carries OVH's own message and query id (what OVH support asks for) and never a
    credential: python-ovh's exceptions hold no request headers."""
    errors = ovh.exceptions
    if isinstance(exc, errors.HTTPError):  # requests failed below HTTP
        cause = exc.args[1] if len(exc.args) > 1 else exc.__context__
        kind = "timeout" if isinstance(cause, requests.Timeout) else "connection"
        return ProviderError(f"{where}: {kind}: {cause}", kind=kind, retryable=True)
    if isinstance(exc, errors.NetworkError):
        return ProviderError(f"{where}: network error", kind="connection", retryable=True)
    if isinstance(exc, errors.InvalidResponse):  # e.g. an HTML error page from a proxy
        return ProviderError(f"{where}: {exc.args[0]}", kind="server", retryable=True)
    if isinstance(exc, errors.OAuth2FailureError):
        text = str(exc.args[0]) if exc.args else "OAuth2 failure"
        found = re.search(r"status_code=(\d+)", text)
        status = int(found.group(1)) if found else 0
        kind, retryable = kind_of_status(status, "auth", not_found="auth")
        return ProviderError(f"{where}: {text}", kind=kind, retryable=retryable)
    response = getattr(exc, "response", None)
    status = response.status_code if response is not None else 0
    error_code = ""
    if response is not None:
        with contextlib.suppress(ValueError, AttributeError):
            error_code = str(response.json().get("errorCode") or "")
    message = str(exc.args[0]) if exc.args and exc.args[0] else "no message"
    detail = f"HTTP {status}" + (f" {error_code}" if error_code else "") + f": {message}"
    if getattr(exc, "query_id", None):
        detail += f" (OVH query id {getattr(exc, 'query_id', '')})"
    if isinstance(exc, errors.ResourceNotFoundError):
        kind, retryable = "not_found", False
    elif isinstance(
        exc,
        errors.NotGrantedCall
        | errors.NotCredential
        | errors.InvalidKey
        | errors.InvalidCredential
        | errors.Forbidden,
    ) or error_code in ("INVALID_SIGNATURE", "QUERY_TIME_OUT"):
        kind, retryable = "auth", False
    elif isinstance(exc, errors.BadParametersError | errors.ResourceConflictError):
        kind, retryable = "invalid", False
    elif isinstance(exc, errors.InvalidConfiguration | errors.InvalidRegion):
        kind, retryable = "config", False
    else:
        kind, retryable = kind_of_status(status, "api", not_found="api")
    return ProviderError(f"{where}: {detail}", kind=kind, retryable=retryable)
