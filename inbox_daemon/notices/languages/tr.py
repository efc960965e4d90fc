"""Turkish notices (amazon.com.tr). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="tr",
    opt_out=(r"alıcı,? satıcılardan (?:gelen )?istenmeyen mesajları almamayı (?:seçti|tercih etti)",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"iletişim yönergelerine uymuyor",),
        LookAlike.CANCELLATION: (r"iptal talebi",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\b(?:şunu )?yazdı\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('alıcı', 'alıcının', 'müşteri', 'müşterinin'),
        'out': ('almamayı', 'almak istemiyor', 'almak istemediğini', 'almayı reddetti', 'reddetti', 'devre dışı', 'almamak', 'kapattı', 'almama', 'almamaya'),
        'unsolicited': ('istenmeyen', 'istenmemiş', 'talep edilmemiş', 'izinsiz', 'tanıtım'),
        'messages': ('mesaj', 'mesajlar', 'mesajları', 'mesajlarını', 'mesajı', 'e posta', 'iletişim'),
        'attachment': ('ek', 'eki', 'ekler', 'dosya', 'dosyası'),
        'size': ('boyut', 'boyutu', 'büyük', 'aşıyor', 'aştı', 'sınır', 'sınırı', 'mb'),
        'window': ('süre', 'süresi', 'dönem', 'pencere', 'gün'),
        'closed': ('doldu', 'kapandı', 'kapalı', 'sona', 'geçti'),
        'account': ('hesap', 'hesabı', 'hesabınız'),
        'restricted': ('kısıtlandı', 'kısıtlanmış', 'askıya', 'engellendi', 'sınırlandırıldı'),
        'policy': ('yönergeler', 'yönergelerine', 'yönergelerimize', 'politika', 'politikalarını', 'kurallar', 'kurallarına'),
        'violate': ('ihlal', 'uymuyor', 'uymadığı', 'uymadığından', 'izin verilmeyen', 'yasak'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('çünkü', 'nedeniyle', 'dolayı', 'sebebiyle'),
    hedges=('eğer',),
    # The choice verb with -ebil/-abil (can, may) and the words for "possible"; with -me/-ma
    # (not) and the free negations. "almama-" (not to receive) is the opt-out itself, so the
    # negation lists only forms of the verbs that state the choice (seçmek, tercih etmek,
    # karar vermek) and the particles.
    modal=('seçebilir', 'seçebilirler', 'seçebilmektedir', 'edebilir', 'edebilirler', 'verebilir', 'isteyebilir',
           'olabilir', 'mümkün', 'mümkündür'),
    negation=('seçmedi', 'seçmemiş', 'seçmemiştir', 'seçmemektedir', 'etmedi', 'etmemiş', 'etmemiştir', 'vermedi',
              'vermemiş', 'değil', 'değildir', 'asla', 'hiçbir zaman'),
    verb_final=True,
    subjects=("Alıcıya gönderdiğiniz mesaj teslim edilemedi", 'Alıcıya mesajınız teslim edilemedi', 'Mesajınız alıcıya iletilemedi'),
    labels={"from": ("kimden",), "subject": ("konu",), "date": ("tarih", "gönderildi"), "to": ("kime",)},
)
