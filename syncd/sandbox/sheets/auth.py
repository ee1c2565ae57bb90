"""Service accounts and OAuth2: key files, the JWT-bearer token endpoint, bearer-token checks.

google-auth signs a real RS256 assertion with the key file's private key and trades it for an
access token at ``token_uri``; the emulator verifies that signature against the registered
public key, so a wrong or stale key fails here as it would at Google.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from syncd.sandbox.sheets.errors import ApiError, OAuthError

DEFAULT_CLIENT_EMAIL = "syncd@sandbox-project.iam.gserviceaccount.com"
SPREADSHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ALLOWED_LOCATIONS = {"locations": [], "encodedLocations": "0x0"}
# google-auth's default is 3600 s; Google rejects assertions that live longer than an hour.
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 300


def generate_service_account_key(
    token_uri: str, client_email: str = DEFAULT_CLIENT_EMAIL
) -> dict[str, str]:
    """A fresh service-account key file (as the Cloud console downloads it) whose
    ``token_uri`` points wherever tokens should come from, normally this emulator."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    project_id = client_email.split("@", 1)[-1].split(".", 1)[0]
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21)).zfill(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + quote(client_email, safe=""),
        "universe_domain": "googleapis.com",
    }


def write_key_file(path: str | os.PathLike[str], key_info: Mapping[str, str]) -> None:
    """Write a key file readable by its owner only (it holds a private key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key_info, handle, indent=2)


@dataclass(frozen=True)
class ServiceAccount:
    email: str
    key_id: str | None
    public_key: rsa.RSAPublicKey


@dataclass
class AccessToken:
    email: str
    scopes: frozenset[str]
    expires_at: float


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_jwt(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64url(header_b64))
        claims = json.loads(_b64url(claims_b64))
        signature = _b64url(signature_b64)
    except ValueError:
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.")
    return header, claims, signature, f"{header_b64}.{claims_b64}".encode()


def allowed_locations() -> dict[str, Any]:
    """google-auth's Regional Access Boundary lookup: no restrictions."""
    return dict(_ALLOWED_LOCATIONS)


class TokenAuthority:
    """The service accounts the emulator trusts and the access tokens it has issued.

    Not thread-safe on its own: the emulator calls it under its lock."""

    def __init__(self) -> None:
        self._accounts_by_key: dict[str, ServiceAccount] = {}
        self._accounts_by_email: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, AccessToken] = {}

    def register(
        self,
        key: Mapping[str, str] | rsa.RSAPublicKey,
        client_email: str | None = None,
        key_id: str | None = None,
    ) -> str:
        """Trust a service account: a key-file dict, or a public key plus its e-mail.
        Returns the account's e-mail."""
        if isinstance(key, Mapping):
            private = serialization.load_pem_private_key(key["private_key"].encode(), None)
            assert isinstance(private, rsa.RSAPrivateKey)
            public_key = private.public_key()
            client_email = client_email or key["client_email"]
            key_id = key_id or key.get("private_key_id")
        else:
            public_key = key
        if not client_email:
            raise ValueError("client_email is required with a bare public key")
        account = ServiceAccount(client_email, key_id, public_key)
        if key_id:
            self._accounts_by_key[key_id] = account
        self._accounts_by_email[client_email] = account
        return client_email

    def expire_all(self) -> None:
        """Make every issued access token stale (the next API call gets a 401)."""
        for token in self._tokens.values():
            token.expires_at = 0.0

    def grant(self, form_body: bytes, lifetime_seconds: float) -> dict[str, Any]:
        """The token endpoint: a JWT-bearer grant in, a bearer token out."""
        form = {k: v[-1] for k, v in parse_qs(form_body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError(
                "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
            )
        if not form.get("assertion"):
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        account, claims = self._verify_assertion(form["assertion"])
        access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self._tokens[access_token] = AccessToken(
            account.email,
            frozenset(str(claims.get("scope") or "").split()),
            time.monotonic() + lifetime_seconds,
        )
        return {
            "access_token": access_token,
            "expires_in": int(lifetime_seconds),
            "token_type": "Bearer",
        }

    def _verify_assertion(self, assertion: str) -> tuple[ServiceAccount, dict[str, Any]]:
        """Check an RS256 JWT grant. ``aud`` is not compared with this server's URL:
        google-auth always sends Google's token URL there, whatever ``token_uri`` says."""
        header, claims, signature, signed = _decode_jwt(assertion)
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: unsupported algorithm.")
        account = self._accounts_by_key.get(str(header.get("kid"))) or self._accounts_by_email.get(
            str(claims.get("iss"))
        )
        if account is None or claims.get("iss") != account.email:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            account.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        now = time.time()
        issued, expires = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(issued, int | float)
            or not isinstance(expires, int | float)
            or expires <= now
            or issued > now + _CLOCK_SKEW
            or expires - issued > _MAX_ASSERTION_LIFETIME
        ):
            raise OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return account, claims

    def authenticate(self, authorization: str | None, kind: str) -> AccessToken:
        """The live token an ``Authorization`` header carries, with a scope that allows a
        ``kind`` ("read" or "write") call."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= time.monotonic():
            raise ApiError(401)
        allowed = {SPREADSHEETS_SCOPE, DRIVE_SCOPE}
        if kind == "read":
            allowed |= {SPREADSHEETS_SCOPE + ".readonly", DRIVE_SCOPE + ".readonly"}
        if not token.scopes & allowed:
            raise ApiError(403, "Request had insufficient authentication scopes.")
        return token
