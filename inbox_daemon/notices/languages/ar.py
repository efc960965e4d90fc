"""Arabic notices (amazon.sa, amazon.ae, amazon.eg). Wording RECONSTRUCTED from the English notice
(wrappings_marketplaces_lookalikes/sa_direct_arabic_only.eml): "… لأن المشتري اختار عدم تلقي رسائل غير مرغوب فيها من البائعين."
Before this table an Arabic-only notice was "not a delivery notice": a missed opt-out.
"""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="ar",
    opt_out=(
        r"المشتري (?:قد )?(?:اختار|قرر|فضل) عدم (?:تلقي|استلام) (?:ال)?رسائل (?:ال)?غير (?:المرغوب|مرغوب|المطلوبة|مطلوبة)",
    ),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"(?:لا تتوافق|لم تتوافق) مع (?:إرشادات|سياسات)",),
        LookAlike.CANCELLATION: (r"طلب (?:ال)?إلغاء",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"كتب\s*[:：]$",),
    subjects=("تعذر تسليم رسالتك إلى المشتري",),
    labels={"from": ("من",), "subject": ("الموضوع",), "date": ("التاريخ", "تاريخ الإرسال"), "to": ("إلى",)},
)
