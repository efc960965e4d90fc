"""Swedish notices (amazon.se). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="sv",
    opt_out=(r"köparen har valt att inte ta emot (?:oönskade|oombedda|oanmodade) meddelanden",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"uppfyllde inte riktlinjerna",),
        LookAlike.CANCELLATION: (r"begäran om avbokning", r"annulleringsbegäran"),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bskrev\b.{0,200}:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('köparen', 'köpare', 'kunden', 'kund', 'mottagaren'),
        'out': ('inte ta emot', 'avstå från', 'avregistrerat', 'valt bort', 'avböjt', 'avaktiverat', 'inte få', 'slutat ta emot'),
        'unsolicited': ('oönskade', 'oönskat', 'oombedda', 'oanmodade', 'icke efterfrågade', 'reklam'),
        'messages': ('meddelanden', 'meddelande', 'e post', 'mejl', 'kommunikation'),
        'attachment': ('bilaga', 'bilagan', 'bilagor', 'fil', 'filen', 'filer'),
        'size': ('storlek', 'storleken', 'för stor', 'överskrider', 'gräns', 'gränsen', 'mb'),
        'window': ('period', 'perioden', 'tidsfönster', 'fönster', 'dagar'),
        'closed': ('stängt', 'stängd', 'utgått', 'passerat', 'löpt ut', 'gått ut'),
        'account': ('konto', 'kontot'),
        'restricted': ('begränsat', 'begränsad', 'spärrat', 'avstängt', 'pausat'),
        'policy': ('riktlinjer', 'riktlinjerna', 'policy', 'regler'),
        'violate': ('bryter', 'uppfyllde inte', 'uppfyller inte', 'inte tillåtet', 'förbjudet'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('eftersom', 'på grund av'),
    hedges=('om', 'när'),
    modal=('kan', 'får', 'skulle'),
    negation=('inte', 'aldrig'),
    subjects=("Ditt meddelande till en köpare kunde inte levereras", 'Meddelandet till köparen kunde inte levereras'),
    labels={"from": ("från",), "subject": ("ämne",), "date": ("datum", "skickat"), "to": ("till",)},
)
