"""Mailbox providers as sellers have them: what ``provider = "gmail" | "microsoft365"`` fills in
for an ``[[imap.accounts]]`` entry (IMAP server, OAuth 2.0 endpoints and scopes). One table,
read by the config (defaults) and by the token sources; ``generic`` fills nothing.

Sources: Google, "IMAP, POP, and SMTP" (imap.gmail.com:993, scope ``https://mail.google.com/``)
and "OAuth 2.0 for TV and Limited-Input Device Applications"; Microsoft, "Authenticate an IMAP,
POP or SMTP connection using OAuth" (outlook.office365.com:993, ``IMAP.AccessAsUser.All``
delegated, ``.default`` app-only with a service principal) and the v2.0 device code flow.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Provider", "PROVIDERS", "AUTH_METHODS", "GRANTS", "provider"]

AUTH_METHODS = ("password", "xoauth2", "oauthbearer")
GRANTS = ("refresh_token", "client_credentials")


@dataclass(frozen=True)
class Provider:
    """Defaults for one provider; ``{tenant}`` in a URL is the account's ``tenant``."""

    host: str = ""
    port: int = 993
    tls: str = "implicit"
    auth: str = "password"
    token_url: str = ""
    device_url: str = ""
    scopes: tuple[str, ...] = ()  # delegated access (refresh_token grant)
    app_scopes: tuple[str, ...] = ()  # app-only access (client_credentials grant)
    # How the client authenticates at the token endpoint (RFC 6749 2.3.1): HTTP Basic is the
    # one every server must take; Google and Microsoft document the form fields.
    token_auth: str = "client_secret_basic"
    tenant: str = ""


PROVIDERS: dict[str, Provider] = {
    "generic": Provider(),
    "gmail": Provider(
        host="imap.gmail.com", auth="xoauth2",
        token_url="https://oauth2.googleapis.com/token",
        device_url="https://oauth2.googleapis.com/device/code",
        scopes=("https://mail.google.com/",), token_auth="client_secret_post",
    ),
    "microsoft365": Provider(
        host="outlook.office365.com", auth="xoauth2",
        token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        device_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        # offline_access: without it no refresh token is issued (Microsoft identity platform).
        scopes=("https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"),
        app_scopes=("https://outlook.office365.com/.default",),
        token_auth="client_secret_post", tenant="organizations",
    ),
}


def provider(name: str) -> Provider:
    """The preset called ``name``; KeyError when there is none."""
    return PROVIDERS[name]
