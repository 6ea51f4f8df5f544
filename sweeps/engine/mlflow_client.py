"""An MLflow client that outlasts a tracking server outage: one warning line, retries, then the data.

MLflow's own HTTP retries wait silently (a sweep once sat 70 s without a word while its server was down),
then raise, and the trial is lost. :class:`RetryingClient` wraps every ``MlflowClient`` call: on a
transient failure (connection refused or reset, timeouts, HTTP 5xx, a locked SQLite database) it prints
one warning line, retries with backoff until ``CRL_MLFLOW_RETRY_S`` seconds (default 600) have passed
since the outage began, prints one line when the server answers again, and only then gives up. Errors
that are not transient (a bad parameter, a missing run) are raised at once. Calls are retried whole: the
ones the project makes are idempotent (tags, params, batches of metrics, artifacts, status updates)
except creating a run, which :func:`find_or_create` makes idempotent by looking the run up first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from crl_core.redaction import redact_text, redact_uri

__all__ = ["RetryingClient", "transient", "find_or_create", "HTTP_ENV"]

# MLflow's own retries for HTTP stores, kept short so that RetryingClient reports an outage promptly
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_TRANSIENT_TEXT = ("Max retries exceeded", "Connection refused", "Connection reset", "Failed to establish",
                   "Connection aborted", "RemoteDisconnected", "timed out", "database is locked",
                   "Temporary failure", "503", "502", "504")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the tracking store is (for now) unreachable rather than the request wrong."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import requests

        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
    except ImportError:
        pass
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        if exc.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            return True
        return any(t in str(exc) for t in _TRANSIENT_TEXT)
    return False


class RetryingClient:
    """``MlflowClient(uri)`` whose calls survive an outage of the tracking store (see the module doc)."""

    def __init__(self, uri: str, retry_s: float | None = None, say: Callable[[str], None] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        if uri.startswith(("http://", "https://")):
            for key, value in HTTP_ENV.items():
                os.environ.setdefault(key, value)
        self._client = MlflowClient(uri)
        self._uri = redact_uri(uri)
        self.retry_s = float(os.environ.get("CRL_MLFLOW_RETRY_S", "600") if retry_s is None else retry_s)
        self._say = say or (lambda m: print(m, file=sys.stderr, flush=True))

    @property
    def raw(self):
        return self._client

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self._client, method)
        started, delay = None, 1.0
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if not transient(exc):
                    raise
                now = time.time()
                if started is None:
                    started = now
                    self._say(f"warning: MLflow at {self._uri} is unreachable ({type(exc).__name__}: "
                              f"{redact_text(str(exc))[:200]}); retrying for up to {self.retry_s:.0f} s")
                if now - started > self.retry_s:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if started is not None:
                self._say(f"MLflow at {self._uri} answers again after {time.time() - started:.0f} s; "
                          f"'{method}' went through")
            return result

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)


def find_or_create(client: RetryingClient, find: Callable[[], str | None], create: Callable[[], str]) -> str:
    """An idempotent create: look the object up, create it only if absent, and after a failed create look
    again before retrying (the server may have created it before the connection broke). ``create`` must
    call the raw client (``client.raw``), so that it is tried once per round."""
    deadline = time.time() + client.retry_s
    while True:
        found = find()  # retried by the client
        if found:
            return found
        try:
            return create()
        except Exception as exc:
            if not transient(exc) or time.time() > deadline:
                raise
            time.sleep(2.0)
