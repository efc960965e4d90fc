"""Italian notices (amazon.it). Wording RECONSTRUCTED (corpus s09): "… perché l'acquirente ha
scelto di non ricevere messaggi non richiesti dai venditori."
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="it",
    opt_out=(r"acquirente ha (?:scelto|deciso) di non ricevere messaggi non (?:richiesti|sollecitati)",),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (r"link (?:per (?:annullare l'iscrizione|la disiscrizione)|di disiscrizione)",),
        LookAlike.CONTENT_POLICY: (r"non (?:rispetta|rispettava) le linee guida", r"contenuti? non consentit"),
        LookAlike.ATTACHMENT: (r"allegato (?:con un tipo|non supportato)", r"tipo di file (?:dell'allegato )?non"),
        LookAlike.RESTRICTED_ACCOUNT: (r"account (?:è stato )?(?:temporaneamente )?(?:limitato|sospeso)",),
        LookAlike.UNAUTHORISED_SENDER: (r"indirizzo e-?mail non autorizzato",),
        LookAlike.FRAUD_FILTER: (r"filtr\w+ (?:anti-?)?frode",),
        LookAlike.CLOSED_ADDRESS: (r"indirizzo (?:e-?mail )?(?:è )?(?:chiuso|disattivato)",),
        LookAlike.ORDER_NOTIFICATION: (r"venduto, spedisci ora", r"hai un nuovo ordine"),
        LookAlike.CANCELLATION: (r"richiesta di cancellazione", r"richiesta di annullamento"),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bha scritto\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('acquirente', "l'acquirente", 'cliente', 'il cliente', 'destinatario', 'compratore'),
        'out': ('non ricevere', 'non riceve', 'non desidera ricevere', 'non vuole ricevere', 'disattivato', 'disattivata', 'rifiutato', 'rifiutata', 'disiscritto', 'disiscritta', 'non più ricevere', 'di non riceverne'),
        'unsolicited': ('non richiesti', 'non richiesto', 'non richieste', 'non sollecitati', 'indesiderati', 'indesiderato', 'indesiderate', 'promozionali'),
        'messages': ('messaggio', 'messaggi', 'comunicazione', 'comunicazioni', 'e mail', 'email'),
        'attachment': ('allegato', 'allegati', 'file'),
        'size': ('dimensione', 'dimensioni', 'grande', 'grandi', 'supera', 'superato', 'superano', 'limite', 'mb'),
        'window': ('periodo', 'finestra', 'giorni', 'termine'),
        'closed': ('scaduto', 'scaduta', 'chiuso', 'chiusa', 'trascorso', 'trascorsi', 'terminato'),
        'account': ('account',),
        'restricted': ('limitato', 'sospeso', 'bloccato', 'disattivato', 'limitata', 'sospesa'),
        'policy': ('linee guida', 'politiche', 'norme', 'regole'),
        'violate': ('viola', 'violano', 'violazione', 'non rispetta', 'non rispettava', 'non consentito', 'non consentiti', 'vietato'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('perché', 'poiché', 'in quanto', 'a causa'),
    hedges=('se', 'quando', 'qualora'),
    modal=('può', 'possono', 'potrebbe'),
    negation=('non', 'mai'),
    subjects=("Non è stato possibile consegnare il tuo messaggio a un acquirente", "Impossibile consegnare il messaggio all'acquirente", "Messaggio all'acquirente non recapitato", 'Il tuo messaggio non è stato consegnato'),
    labels={
        "from": ("da",),
        "subject": ("oggetto",),
        "date": ("data", "inviato"),
        "to": ("a",),
    },
    conditional=(r"\b(?:se|quando|qualora) (?:l'|un )?$",),
)
