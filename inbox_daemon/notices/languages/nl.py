"""Dutch notices (amazon.nl, amazon.com.be). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="nl",
    opt_out=(
        r"koper (?:heeft ervoor|ervoor heeft) gekozen,? geen ongevraagde berichten(?: van verkopers)? te ontvangen",
        # Flemish order and "om … te": "omdat de koper ervoor gekozen heeft om geen ongevraagde
        # berichten van verkopers te ontvangen" (replies_mime_oddities_bulk_mail/be_direct_nl_flemish_om_te.eml).
        r"koper ervoor gekozen heeft,? om geen ongevraagde berichten",
    ),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"voldoet niet aan de (?:communicatie)?richtlijnen",),
        LookAlike.RESTRICTED_ACCOUNT: (r"account is (?:tijdelijk )?beperkt",),
        LookAlike.CANCELLATION: (r"annuleringsverzoek",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bschreef\b.{0,200}:$",),
    subjects=("Je bericht aan een koper kon niet worden bezorgd",),
    labels={"from": ("van",), "subject": ("onderwerp",), "date": ("datum", "verzonden"), "to": ("aan",)},
    conditional=(r"\b(?:als|wanneer|indien) (?:de |een )?$",),
)
