"""Portuguese notices (amazon.com.br). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="pt",
    opt_out=(r"comprador (?:optou|escolheu|decidiu) (?:por )?não receber mensagens não solicitadas",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"não (?:atende|cumpre) (?:às|as) diretrizes",),
        LookAlike.RESTRICTED_ACCOUNT: (r"conta (?:foi |está )?(?:temporariamente )?restrita",),
        LookAlike.CANCELLATION: (r"solicitação de cancelamento",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bescreveu\s*:$",),
    subjects=("Não foi possível entregar sua mensagem a um comprador",),
    labels={"from": ("de",), "subject": ("assunto",), "date": ("data", "enviada"), "to": ("para",)},
)
