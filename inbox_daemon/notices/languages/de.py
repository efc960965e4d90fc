"""German notices (amazon.de). Wording RECONSTRUCTED (corpus s15): "… nicht zustellen, weil der
Käufer den Erhalt unerwünschter Nachrichten von Verkäufern deaktiviert hat." Apple Mail's German
forward labels ("Anfang der weitergeleiteten E-Mail:", "Von:", "Betreff:") are in ``labels``.
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="de",
    opt_out=(
        r"käufer (?:hat )?den (?:erhalt|empfang) unerwünschter nachrichten (?:von verkäufern )?deaktiviert",
        r"käufer hat sich (?:dafür |dazu )?entschieden, keine (?:unerwünschten|unaufgeforderten) nachrichten",
        # Subordinate clause, verb last: "da sich der Käufer dafür entschieden hat, keine
        # unaufgeforderten Nachrichten … zu erhalten" (wrappings_marketplaces_lookalikes/outlook_fwd_german_labels_latin9.eml).
        r"sich (?:der )?käufer (?:dafür |dazu )?entschieden hat, keine (?:unerwünschten|unaufgeforderten) nachrichten",
        r"käufer möchte keine unerwünschten nachrichten",
    ),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (r"(?:abmelde|abbestell)-?link",),
        LookAlike.CONTENT_POLICY: (
            r"(?:entspricht|entsprach) nicht den (?:kommunikations)?richtlinien",
            r"inhalte?, die (?:in nachrichten an käufer )?nicht (?:zulässig|erlaubt)",
        ),
        LookAlike.ATTACHMENT: (r"anhang (?:mit einem )?(?:nicht unterstützt|dateityp)", r"dateityp des anhangs"),
        LookAlike.RESTRICTED_ACCOUNT: (r"konto (?:wurde |ist )?(?:vorübergehend )?(?:eingeschränkt|gesperrt)",),
        LookAlike.UNAUTHORISED_SENDER: (
            r"nicht (?:autorisierte|autorisierten|zugelassene) (?:e-mail-)?(?:adresse|absender)",
            # wrappings_marketplaces_lookalikes/lookalike_unregistered_sender_de_outlook.eml
            r"(?:adresse|absender)\w*(?: gesendet wurde)?, die nicht (?:in seller central )?(?:registriert|hinterlegt)",
        ),
        LookAlike.FRAUD_FILTER: (r"betrugs(?:filter|erkennung|prüfung)",),
        LookAlike.CLOSED_ADDRESS: (r"adresse (?:ist |wurde )?(?:geschlossen|deaktiviert|nicht mehr aktiv)",),
        LookAlike.ORDER_NOTIFICATION: (r"verkauft, jetzt versenden", r"sie haben eine neue bestellung"),
        LookAlike.CANCELLATION: (r"stornierungsanfrage", r"stornierungsantrag"),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bschrieb\b.{0,200}:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('käufer', 'käuferin', 'käufers', 'kunde', 'kunden', 'kundin', 'empfänger', 'empfängerin'),
        'out': ('deaktiviert', 'abgemeldet', 'abbestellt', 'abgelehnt', 'widersprochen', 'nicht erhalten', 'nicht zu erhalten', 'nicht mehr erhalten', 'nicht mehr zu erhalten', 'keine', 'nicht empfangen', 'ausgeschlossen', 'abgewählt', 'verzichtet'),
        'unsolicited': ('unerwünschte', 'unerwünschter', 'unerwünschten', 'unerwünschtes', 'unaufgeforderte', 'unaufgeforderter', 'unaufgeforderten', 'unverlangte', 'unverlangten', 'unverlangter', 'werbliche', 'werblichen', 'werbenachrichten', 'proaktive', 'proaktiven'),
        'messages': ('nachricht', 'nachrichten', 'mitteilung', 'mitteilungen', 'e mail', 'e mails', 'emails', 'email', 'kontaktaufnahme', 'kontaktaufnahmen', 'werbenachrichten'),
        'attachment': ('anhang', 'anhänge', 'anhängen', 'anlage', 'anlagen', 'datei', 'dateien', 'dateianhang', 'dateianhänge', 'dateigröße'),
        'size': ('größe', 'dateigröße', 'zu groß', 'überschreitet', 'überschritten', 'überschreiten', 'maximal', 'maximale', 'limit', 'mb'),
        'window': ('zeitraum', 'zeitfenster', 'frist', 'nachrichtenfrist', 'tage', 'tagen'),
        'closed': ('abgelaufen', 'geschlossen', 'verstrichen', 'vorbei', 'beendet', 'überschritten'),
        'account': ('konto', 'kontos', 'verkäuferkonto', 'verkäuferkontos'),
        'restricted': ('eingeschränkt', 'gesperrt', 'deaktiviert', 'beschränkt', 'ausgesetzt'),
        'policy': ('richtlinie', 'richtlinien', 'kommunikationsrichtlinien', 'regeln', 'bestimmungen'),
        'violate': ('verstößt', 'verstoßen', 'verstoß', 'entspricht nicht', 'entsprach nicht', 'nicht zulässig', 'nicht erlaubt', 'unzulässig', 'unzulässige', 'unzulässigen'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('weil', 'da der', 'da die', 'da das', 'da sie', 'da ihr', 'da ihre', 'aufgrund', 'wegen'),
    hedges=('wenn', 'falls', 'sofern', 'ob'),
    modal=('kann', 'könnte', 'können', 'darf', 'dürfen'),
    negation=('nicht', 'nie', 'niemals'),
    subjects=("Ihre Nachricht an einen Käufer konnte nicht zugestellt werden", 'Nachricht an Käufer nicht zustellbar', 'Ihre Nachricht konnte nicht zugestellt werden', 'Unzustellbar: Nachricht an Käufer'),
    labels={
        "from": ("von",),
        "subject": ("betreff",),
        "date": ("datum", "gesendet"),
        "to": ("an", "kopie"),
    },
    conditional=(r"\b(?:wenn|falls|sofern) (?:sich )?(?:der |ein )?$",),
)
