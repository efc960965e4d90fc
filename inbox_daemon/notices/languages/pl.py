"""Polish notices (amazon.pl). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
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
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('kupujący', 'kupująca', 'klient', 'odbiorca'),
        'out': ('nie otrzymywać', 'nie chce otrzymywać', 'zrezygnował', 'zrezygnowała', 'wyłączył', 'wyłączyła', 'nie otrzymuje', 'odmówił', 'odmówiła'),
        'unsolicited': ('niezamówionych', 'niezamówione', 'niechcianych', 'niechciane', 'nieproszonych', 'promocyjnych'),
        'messages': ('wiadomości', 'wiadomość', 'komunikacji', 'e maili', 'maili'),
        'attachment': ('załącznik', 'załącznika', 'załączniki', 'plik', 'pliku'),
        'size': ('rozmiar', 'rozmiaru', 'przekracza', 'przekroczył', 'limit', 'mb'),
        'window': ('okres', 'okno', 'termin', 'dni'),
        'closed': ('upłynął', 'wygasł', 'zamknięte', 'zamknięty', 'minął'),
        'account': ('konto',),
        'restricted': ('ograniczone', 'zawieszone', 'zablokowane', 'ograniczony'),
        'policy': ('wytycznych', 'wytyczne', 'zasad', 'zasady', 'polityki'),
        'violate': ('narusza', 'naruszenie', 'nie spełnia', 'nie spełniała', 'niedozwolone', 'zabronione'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('ponieważ', 'gdyż', 'z powodu', 'ze względu'),
    hedges=('jeśli', 'jeżeli', 'gdy', 'kiedy'),
    modal=('może', 'mogą'),
    negation=('nie', 'nigdy'),
    subjects=("Nie można dostarczyć wiadomości do kupującego", 'Wiadomość do kupującego nie została dostarczona'),
    labels={"from": ("od",), "subject": ("temat",), "date": ("data", "wysłano"), "to": ("do",)},
)
