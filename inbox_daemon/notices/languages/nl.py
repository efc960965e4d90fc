"""Dutch notices (amazon.nl, amazon.com.be). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
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
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('koper', 'klant', 'ontvanger', 'koopster'),
        'out': ('geen', 'niet ontvangen', 'niet te ontvangen', 'niet meer ontvangen', 'niet meer te ontvangen', 'afgemeld', 'uitgeschreven', 'uitgeschakeld', 'geweigerd', 'weigert'),
        'unsolicited': ('ongevraagde', 'ongevraagd', 'ongewenste', 'ongewenst', 'promotionele', 'reclame', 'reclameberichten'),
        'messages': ('bericht', 'berichten', 'communicatie', 'e mails', 'email', 'mails', 'reclameberichten'),
        'attachment': ('bijlage', 'bijlagen', 'bestand', 'bestanden'),
        'size': ('grootte', 'te groot', 'overschrijdt', 'overschreden', 'limiet', 'mb', 'maximale'),
        'window': ('termijn', 'periode', 'venster', 'dagen'),
        'closed': ('verlopen', 'gesloten', 'verstreken', 'voorbij', 'afgelopen'),
        'account': ('account', 'verkopersaccount'),
        'restricted': ('beperkt', 'geblokkeerd', 'opgeschort', 'gedeactiveerd'),
        'policy': ('richtlijnen', 'beleid', 'regels', 'communicatierichtlijnen'),
        'violate': ('schendt', 'overtreedt', 'voldoet niet', 'voldeed niet', 'niet toegestaan', 'verboden'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('omdat', 'vanwege', 'aangezien', 'wegens'),
    hedges=('als', 'wanneer', 'indien'),
    modal=('kan', 'kunnen', 'mag', 'mogen', 'zou'),
    negation=('niet', 'nooit'),
    subjects=("Je bericht aan een koper kon niet worden bezorgd", 'Uw bericht aan een koper kon niet worden bezorgd', 'Bericht aan koper niet bezorgd', 'Je bericht kon niet worden afgeleverd'),
    labels={"from": ("van",), "subject": ("onderwerp",), "date": ("datum", "verzonden"), "to": ("aan",)},
    conditional=(r"\b(?:als|wanneer|indien) (?:de |een )?$",),
)
