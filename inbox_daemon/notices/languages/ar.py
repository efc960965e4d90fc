"""Arabic notices (amazon.sa, amazon.ae, amazon.eg). Wording RECONSTRUCTED from the English notice
(wrappings_marketplaces_lookalikes/sa_direct_arabic_only.eml): "… لأن المشتري اختار عدم تلقي رسائل غير مرغوب فيها من البائعين."
Before this table an Arabic-only notice was "not a delivery notice": a missed opt-out.
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
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
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('المشتري', 'للمشتري', 'العميل', 'المستلم'),
        'out': ('عدم تلقي', 'عدم استلام', 'إلغاء الاشتراك', 'رفض', 'أوقف', 'ألغى'),
        'unsolicited': ('غير المرغوب', 'غير مرغوب', 'غير المطلوبة', 'غير مطلوبة', 'الترويجية'),
        'messages': ('رسائل', 'الرسائل', 'رسالة', 'الرسالة', 'الاتصالات'),
        'attachment': ('المرفق', 'مرفق', 'المرفقات', 'ملف', 'الملف'),
        'size': ('حجم', 'الحجم', 'يتجاوز', 'تجاوز', 'الحد', 'كبير', 'ميغابايت'),
        'window': ('فترة', 'الفترة', 'المهلة', 'مهلة', 'نافذة', 'أيام', 'يوما'),
        'closed': ('انتهت', 'انتهى', 'أغلقت', 'مغلقة', 'انقضت'),
        'account': ('حساب', 'حسابك', 'الحساب'),
        'restricted': ('مقيد', 'تقييد', 'معلق', 'تعليق', 'محظور'),
        'policy': ('إرشادات', 'سياسات', 'السياسات', 'الإرشادات', 'قواعد'),
        'violate': ('يخالف', 'مخالفة', 'تنتهك', 'انتهاك', 'لا تتوافق', 'غير مسموح'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('لأن', 'بسبب', 'نظرا لأن', 'نظرًا لأن'),
    hedges=('إذا', 'عندما', 'لو'),
    modal=('يمكن', 'يمكنه'),
    negation=('لم', 'لا'),
    subjects=("تعذر تسليم رسالتك إلى المشتري", 'تعذر تسليم رسالتك إلى المشتري'),
    labels={"from": ("من",), "subject": ("الموضوع",), "date": ("التاريخ", "تاريخ الإرسال"), "to": ("إلى",)},
)
