"""The client's own failures, grafted onto the ``bridge.errors`` tree::

    LangSmithError
    ├── LangSmithAuthError
    │   └── KeyNotAccepted       a verification got 401 or 403: not accepted (yet)
    ├── LangSmithConflict        409; retryable only for idempotent methods
    └── LangSmithTooEarly        425; retryable

They live here, next to the only code that raises them, and import nothing heavier than
``bridge.errors``, so the engine can catch them without loading ``httpx``.

Why 409 and 425 are treated as they are (the official SDKs disagree on 409):

* **425 Too Early** means the server refused to process the request at all (RFC 8470),
  so sending it again is safe for any method. The Python SDK retries it through urllib3
  for every method; so does this client.
* **409 Conflict**: the Go SDK retries it on every method (a lock or a concurrent write
  on the server side that goes away). The Python SDK never retries it and treats it as
  "already exists" where the caller chose the id. Service keys get server-chosen ids, so
  a 409 on ``POST`` cannot mean "your earlier attempt succeeded"; it means the create
  conflicts with something, and creating blindly again risks a second key (the engine
  would heal it by its marker, but only later). So a 409 is retried for idempotent
  methods (``GET``, ``DELETE``, ...: repeating one has no further effect, and a repeated
  delete that finds the key gone answers 404, which callers read as done), and raised at
  once for ``POST`` and ``PATCH``, for the caller to decide.
"""

from __future__ import annotations

from bridge.errors import LangSmithAuthError, LangSmithError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods that RFC 9110 defines as idempotent: safe to repeat after a 409."""


class KeyNotAccepted(LangSmithAuthError):
    """A key under verification was refused with 401 or 403.

    LangSmith caches authentication results for up to a minute, so a key created seconds
    ago may be refused (or reach too little) for a short while: this is "not accepted
    yet", and the caller decides whether to try again later. The client never retries it
    by itself. ``status`` is 401 or 403.
    """


class LangSmithConflict(LangSmithError):
    """409: the request conflicts with the server's current state.

    Args:
        message: What went wrong, without secrets.
        operation: The client method.
        status: The HTTP status (409).
        retryable: Whether repeating the request is safe (an idempotent method).
    """

    def __init__(
        self, message: str, *, operation: str, status: int | None = 409, retryable: bool = False
    ) -> None:
        super().__init__(message, operation=operation, status=status)
        self.retryable = retryable


class LangSmithTooEarly(LangSmithError):
    """425: the server would not process the request yet; it is safe to send again."""

    retryable = True
