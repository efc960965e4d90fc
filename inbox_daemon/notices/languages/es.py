"""Spanish notices (amazon.es, amazon.com.mx). Wording RECONSTRUCTED (corpus s12): "… porque el
comprador ha elegido no recibir mensajes no solicitados de los vendedores."
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="es",
    opt_out=(
        r"comprador ha (?:elegido|decidido|optado por|seleccionado) no recibir mensajes no solicitados",
        # Mexican Spanish uses the preterite (wrappings_marketplaces_lookalikes/outlook_fwd_spanish_labels_mx.eml).
        r"comprador (?:eligió|decidió|optó por) no recibir mensajes no solicitados",
    ),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (r"enlace (?:para darse de baja|de baja|de cancelación de suscripción)",),
        LookAlike.CONTENT_POLICY: (r"no cumpl[eií]\w* (?:con )?las (?:directrices|pautas|normas)", r"contenido no permitido"),
        LookAlike.ATTACHMENT: (r"archivo adjunto (?:con un tipo|no (?:compatible|admitido|permitido))",),
        LookAlike.RESTRICTED_ACCOUNT: (r"cuenta (?:ha sido |está )?(?:temporalmente )?(?:restringida|limitada)",),
        LookAlike.UNAUTHORISED_SENDER: (r"dirección de (?:correo )?(?:electrónico )?no autorizada",),
        LookAlike.FRAUD_FILTER: (
            r"filtr\w+ (?:de |contra el |antifraude)?fraude",
            r"(?:sistemas? de )?detección de fraude", r"antifraude",  # wrappings_marketplaces_lookalikes/lookalike_fraud_detection_mx.eml
        ),
        LookAlike.CLOSED_ADDRESS: (r"dirección (?:de correo )?(?:electrónico )?(?:está |ha sido )?(?:cerrada|desactivada)",),
        LookAlike.ORDER_NOTIFICATION: (r"vendido, envíalo ya", r"tienes un nuevo pedido"),
        LookAlike.CANCELLATION: (r"solicitud de cancelación",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bescribió\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('comprador', 'compradora', 'cliente', 'destinatario'),
        'out': ('no recibir', 'no desea recibir', 'no quiere recibir', 'dejar de recibir', 'darse de baja', 'se dio de baja', 'desactivado', 'desactivó', 'rechazado', 'rechazó', 'no recibe'),
        'unsolicited': ('no solicitados', 'no solicitado', 'no solicitadas', 'no deseados', 'no deseado', 'promocionales'),
        'messages': ('mensaje', 'mensajes', 'comunicación', 'comunicaciones', 'correos', 'correo', 'correos electrónicos'),
        'attachment': ('adjunto', 'adjuntos', 'archivo adjunto', 'archivo', 'archivos'),
        'size': ('tamaño', 'grande', 'supera', 'superado', 'excede', 'excedido', 'límite', 'mb'),
        'window': ('plazo', 'periodo', 'período', 'ventana', 'días'),
        'closed': ('vencido', 'expirado', 'cerrado', 'cerrada', 'transcurrido', 'finalizado'),
        'account': ('cuenta',),
        'restricted': ('restringida', 'restringido', 'suspendida', 'limitada', 'bloqueada', 'desactivada'),
        'policy': ('directrices', 'pautas', 'normas', 'políticas', 'política'),
        'violate': ('infringe', 'incumple', 'viola', 'no cumple', 'no permitido', 'prohibido'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('porque', 'debido a', 'ya que', 'dado que'),
    hedges=('si', 'cuando'),
    modal=('puede', 'pueden', 'podría'),
    negation=('no', 'nunca'),
    subjects=("No se ha podido entregar tu mensaje a un comprador", 'No se pudo entregar tu mensaje al comprador', 'Mensaje al comprador no entregado', 'Tu mensaje no se ha podido entregar'),
    labels={
        "from": ("de",),
        "subject": ("asunto",),
        "date": ("fecha", "enviado", "enviado el"),  # Outlook: "Enviado el:" (wrappings_marketplaces_lookalikes/outlook_fwd_spanish_labels_mx.eml)
        "to": ("para",),
    },
    conditional=(r"\b(?:si|cuando) (?:el |un )?$",),
)
