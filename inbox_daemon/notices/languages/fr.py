"""French notices (amazon.fr, amazon.ca French, amazon.com.be).

Subject and first sentence as quoted on a French seller forum (corpus s10): "… car l'acheteur
a choisi de ne pas recevoir de messages non sollicités de la part des vendeurs."
Look-alike wording is a translation of the English table (RECONSTRUCTED).
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="fr",
    opt_out=(
        r"acheteur a choisi de ne (?:pas|plus) recevoir (?:de |des )?messages non sollicit",
        r"acheteur a refusé (?:de recevoir|la réception d)(?:es)? messages non sollicit",
    ),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (r"lien de (?:désinscription|désabonnement)",),
        LookAlike.CONTENT_POLICY: (
            r"ne respecte pas les (?:règles|consignes|directives) (?:de communication|relatives)",
            r"contenu (?:qui n'est pas |non )autorisé",
        ),
        LookAlike.ATTACHMENT: (r"pièce jointe (?:dont le type|non (?:prise en charge|autorisée))",),
        LookAlike.RESTRICTED_ACCOUNT: (
            r"compte (?:a été |est )?(?:temporairement )?(?:restreint|limité)",
            r"compte ne peut (?:plus|pas) envoyer",  # wrappings_marketplaces_lookalikes/lookalike_restricted_proactive_fr.eml
        ),
        LookAlike.UNAUTHORISED_SENDER: (r"adresse e-?mail (?:non autorisée|qui n'est pas autorisée)",),
        LookAlike.FRAUD_FILTER: (r"(?:filtre|filtrage|détection) (?:anti-?)?fraude",),
        LookAlike.CLOSED_ADDRESS: (r"adresse (?:e-?mail )?(?:est |a été )?(?:fermée|désactivée)",),
        LookAlike.ORDER_NOTIFICATION: (r"vendu, expédiez maintenant", r"vous avez une nouvelle commande"),
        LookAlike.CANCELLATION: (r"demande d'annulation",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\ba écrit\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('acheteur', "l'acheteur", 'acheteuse', "l'acheteuse", 'client', 'cliente', 'destinataire', 'le client'),
        'out': ('ne pas recevoir', 'ne plus recevoir', 'ne pas être contacté', 'refusé', 'refuse', 'désactivé', 'désinscrit', 'désabonné', 'ne souhaite pas recevoir', 'ne souhaite plus recevoir', 'ne veut pas recevoir', 'ne veut plus recevoir', 'de ne pas en recevoir', "s'est désinscrit", "s'est désabonné", "s'est opposé", 'opposé'),
        'unsolicited': ('non sollicités', 'non sollicité', 'non sollicitées', 'non sollicitée', 'non désirés', 'indésirables', 'indésirable', 'promotionnels', 'proactifs'),
        'messages': ('message', 'messages', 'communication', 'communications', 'e mail', 'e mails', 'courriel', 'courriels'),
        'attachment': ('pièce jointe', 'pièces jointes', 'fichier', 'fichiers'),
        'size': ('taille', 'volumineux', 'volumineuse', 'dépasse', 'dépassé', 'dépassent', 'limite', 'mo'),
        'window': ('délai', 'période', 'fenêtre', 'jours'),
        'closed': ('expiré', 'écoulé', 'dépassé', 'fermé', 'fermée', 'terminé', 'clos', 'close'),
        'account': ('compte',),
        'restricted': ('restreint', 'suspendu', 'limité', 'bloqué', 'désactivé'),
        'policy': ('règles', 'consignes', 'directives', 'politique', 'politiques', 'règlement'),
        'violate': ('enfreint', 'enfreignent', 'ne respecte pas', 'ne respectait pas', 'viole', 'violation', 'non autorisé', 'pas autorisé', 'interdit'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('car', 'parce que', "parce qu'", 'en raison', 'puisque'),
    hedges=('si', "s'il", 'lorsque', "lorsqu'un", "lorsqu'il", 'quand'),
    modal=('peut', 'peuvent', 'pourrait', 'pourraient'),
    negation=('pas', 'jamais', "n'a", "n'est"),
    subjects=("Votre message qui était adressé à un acheteur n'a pas pu être transmis", "Votre message à un acheteur n'a pas pu être distribué", "Message à l'acheteur non distribué", 'Échec de la remise de votre message'),
    labels={
        "from": ("de",),
        "subject": ("objet", "sujet"),
        "date": ("date", "envoyé"),
        "to": ("à", "pour"),
    },
    conditional=(r"\b(?:si|lorsque|quand) (?:l'|un )?$", r"\blorsqu'(?:un )?$"),
)
