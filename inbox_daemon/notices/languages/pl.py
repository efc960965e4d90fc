"""Polish notices (amazon.pl). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="pl",
    opt_out=(
        r"kupujący (?:zdecydował|postanowił|wybrał)\w*,? (?:że )?nie (?:chce )?otrzymywać niezamówionych wiadomości",
        r"kupujący zrezygnował\w* z (?:otrzymywania|odbierania) niezamówionych wiadomości",  # wrappings_marketplaces_lookalikes/pl_direct_zrezygnowal.eml
    ),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"nie (?:spełnia|spełniała) wytycznych",),
        LookAlike.CANCELLATION: (r"prośba o anulowanie", r"żądanie anulowania"),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bnapisał(?:\(a\)|a)?\s*:$",),
    subjects=("Nie można dostarczyć wiadomości do kupującego",),
    labels={"from": ("od",), "subject": ("temat",), "date": ("data", "wysłano"), "to": ("do",)},
)
