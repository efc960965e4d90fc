"""Swedish notices (amazon.se). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="sv",
    opt_out=(r"köparen har valt att inte ta emot (?:oönskade|oombedda|oanmodade) meddelanden",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"uppfyllde inte riktlinjerna",),
        LookAlike.CANCELLATION: (r"begäran om avbokning", r"annulleringsbegäran"),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bskrev\b.{0,200}:$",),
    subjects=("Ditt meddelande till en köpare kunde inte levereras",),
    labels={"from": ("från",), "subject": ("ämne",), "date": ("datum", "skickat"), "to": ("till",)},
)
