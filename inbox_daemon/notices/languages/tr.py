"""Turkish notices (amazon.com.tr). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="tr",
    opt_out=(r"alıcı,? satıcılardan (?:gelen )?istenmeyen mesajları almamayı (?:seçti|tercih etti)",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"iletişim yönergelerine uymuyor",),
        LookAlike.CANCELLATION: (r"iptal talebi",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\b(?:şunu )?yazdı\s*:$",),
    subjects=("Alıcıya gönderdiğiniz mesaj teslim edilemedi",),
    labels={"from": ("kimden",), "subject": ("konu",), "date": ("tarih", "gönderildi"), "to": ("kime",)},
)
