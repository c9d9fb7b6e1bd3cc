"""The Google credentials the GCP stores act with: the only place they are made.

Application Default Credentials (the metadata server on Cloud Run and GKE,
``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``), or, with
``impersonate_service_account``, a service account acted as on top of them: the ambient
identity calls IAM Credentials ``generateAccessToken`` for the account (it needs
``roles/iam.serviceAccountTokenCreator`` on it) and google-auth refreshes that token as it
nears its expiry.

Nothing is mapped here: ``google.auth.exceptions.DefaultCredentialsError`` (no ambient
credentials) reaches the caller, which names its store and operation. None of google-auth's
messages carry a token, and nothing here logs.
"""

from __future__ import annotations

from typing import Any

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
LIFETIME_S = 3600  # the longest generateAccessToken grants without an org policy change


def credentials(impersonate: str | None, *, iam_endpoint: str | None = None) -> Any:
    """ADC, or ADC acting as the service account ``impersonate``.

    Args:
        impersonate: The email of the service account to act as; ``None``: ADC as they are.
        iam_endpoint: The full ``generateAccessToken`` URL, account included (tests,
            regional endpoints); default: Google's global IAM Credentials endpoint.

    Returns:
        ``google.auth.credentials.Credentials`` (``Any``: the SDK object, at the edge).

    Raises:
        google.auth.exceptions.DefaultCredentialsError: no ambient credentials were found.
    """
    import google.auth
    from google.auth import impersonated_credentials

    source, _project = google.auth.default(scopes=list(SCOPES))
    if impersonate is None:
        return source
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source,
        target_principal=impersonate,
        target_scopes=list(SCOPES),
        lifetime=LIFETIME_S,
        iam_endpoint_override=iam_endpoint,
    )


__all__ = ["LIFETIME_S", "SCOPES", "credentials"]
