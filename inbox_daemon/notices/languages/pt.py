"""Portuguese notices (amazon.com.br). Wording RECONSTRUCTED from the English notice."""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="pt",
    opt_out=(r"comprador (?:optou|escolheu|decidiu) (?:por )?não receber mensagens não solicitadas",),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"não (?:atende|cumpre) (?:às|as) diretrizes",),
        LookAlike.RESTRICTED_ACCOUNT: (r"conta (?:foi |está )?(?:temporariamente )?restrita",),
        LookAlike.CANCELLATION: (r"solicitação de cancelamento",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bescreveu\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('comprador', 'compradora', 'cliente', 'destinatário'),
        'out': ('não receber', 'não deseja receber', 'não quer receber', 'desativou', 'desativado', 'recusou', 'deixar de receber', 'descadastrou'),
        'unsolicited': ('não solicitadas', 'não solicitada', 'não solicitados', 'indesejadas', 'promocionais'),
        'messages': ('mensagem', 'mensagens', 'comunicação', 'comunicações', 'e mails', 'email', 'emails'),
        'attachment': ('anexo', 'anexos', 'arquivo', 'arquivos'),
        'size': ('tamanho', 'grande', 'excede', 'excedeu', 'ultrapassa', 'limite', 'mb'),
        'window': ('prazo', 'período', 'janela', 'dias'),
        'closed': ('expirou', 'expirado', 'encerrado', 'encerrada', 'terminou', 'fechado', 'fechada'),
        'account': ('conta',),
        'restricted': ('restrita', 'suspensa', 'limitada', 'bloqueada', 'desativada'),
        'policy': ('diretrizes', 'políticas', 'política', 'normas', 'regras'),
        'violate': ('viola', 'violam', 'violação', 'não atende', 'não cumpre', 'não permitido', 'proibido'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('porque', 'pois', 'devido', 'já que'),
    hedges=('se', 'quando', 'caso'),
    modal=('pode', 'podem', 'poderia'),
    negation=('não', 'nunca'),
    subjects=("Não foi possível entregar sua mensagem a um comprador", 'Sua mensagem para um comprador não pôde ser entregue', 'Mensagem ao comprador não entregue'),
    labels={"from": ("de",), "subject": ("assunto",), "date": ("data", "enviada"), "to": ("para",)},
)
