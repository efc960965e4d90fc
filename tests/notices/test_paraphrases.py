"""A paraphrase generator: known notices' sentences rewritten in word order, register,
inflection, punctuation, spacing and case, in every language; opt-outs stay opt-outs (with the
same buyer) and rejections for other reasons stay ``not_opt_out``, direct and forwarded.

Each language lists frames (the delivery failure with the reason after it, before it, or in a
sentence of its own), reason clauses written as Amazon's notice says them and as a person
would rephrase them, and look-alike reasons; every combination goes through every surface
rewrite.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from inbox_daemon.notices import Buyer, Kind, parse_notice

ORDER = "113-7391046-2205817"
LOCAL = "k3x9m2p7q1w8e5r"

# code: (marketplace TLD, frames with {a} {o} {r}, opt-out reasons, look-alike reasons)
PARAPHRASES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "en": ("com", (
        "We were unable to deliver the message you sent to {a} for order {o} because {r}.",
        "Because {r}, your message to {a} for order {o} was not delivered.",
        "{R}. Your message to {a} about order {o} could not be delivered.",
    ), (
        "the buyer has chosen to opt out of receiving unsolicited messages from sellers",
        "the customer opted out of unsolicited messages from sellers",
        "the buyer does not wish to receive unsolicited messages from sellers",
        "this buyer has asked not to receive proactive messages from sellers",
        "the buyer has decided to opt-out of unsolicited seller communications",
    ), (
        "its attachment exceeds the 10 MB size limit",
        "the messaging window for this order has closed",
        "your selling account is restricted from sending messages",
    )),
    "de": ("de", (
        "Wir konnten Ihre Nachricht an {a} zur Bestellung {o} nicht zustellen, weil {r}.",
        "Da {r}, wurde Ihre Nachricht an {a} zur Bestellung {o} nicht zugestellt.",
        "{R}. Ihre Nachricht an {a} (Bestellung {o}) wurde nicht zugestellt.",
    ), (
        "der Käufer den Erhalt unerwünschter Nachrichten von Verkäufern deaktiviert hat",
        "der Kunde keine unaufgeforderten Nachrichten von Verkäufern erhalten möchte",
        "sich der Käufer von unerwünschten Nachrichten abgemeldet hat",
        "die Käuferin unerwünschte Nachrichten abgelehnt hat",
    ), (
        "die Frist für Nachrichten zu dieser Bestellung abgelaufen ist",
        "Ihr Verkäuferkonto vorübergehend eingeschränkt ist",
    )),
    "fr": ("fr", (
        "Nous n'avons pas pu transmettre le message envoyé à {a} pour la commande {o} car {r}.",
        "Comme {r}, votre message à {a} pour la commande {o} n'a pas été transmis.",
        "{R}. Votre message à {a} (commande {o}) n'a pas été transmis.",
    ), (
        "l'acheteur a choisi de ne pas recevoir de messages non sollicités de la part des vendeurs",
        "l'acheteuse ne souhaite plus recevoir de messages non sollicités",
        "le client s'est désinscrit des messages non sollicités des vendeurs",
    ), (
        "la pièce jointe dépasse la taille maximale de 10 Mo",
        "votre compte a été temporairement restreint",
    )),
    "it": ("it", (
        "Non è stato possibile consegnare il messaggio inviato a {a} per l'ordine {o} perché {r}.",
        "Poiché {r}, il tuo messaggio a {a} per l'ordine {o} non è stato consegnato.",
        "{R}. Il messaggio a {a} (ordine {o}) non è stato consegnato.",
    ), (
        "l'acquirente ha scelto di non ricevere messaggi non richiesti dai venditori",
        "il cliente non desidera ricevere messaggi non richiesti",
        "l'acquirente ha deciso di non ricevere comunicazioni promozionali dai venditori",
    ), (
        "l'allegato supera la dimensione massima consentita",
        "il periodo per i messaggi di questo ordine è scaduto",
    )),
    "es": ("es", (
        "No hemos podido entregar el mensaje que enviaste a {a} sobre el pedido {o} porque {r}.",
        "Como {r}, tu mensaje a {a} sobre el pedido {o} no se entregó.",
        "{R}. Tu mensaje a {a} (pedido {o}) no se ha entregado.",
    ), (
        "el comprador ha elegido no recibir mensajes no solicitados de los vendedores",
        "el cliente se dio de baja de los mensajes no solicitados",
        "la compradora no desea recibir mensajes promocionales de vendedores",
    ), (
        "el plazo para enviar mensajes sobre este pedido ha vencido",
        "tu cuenta está temporalmente restringida",
    )),
    "pt": ("com.br", (
        "Não foi possível entregar a mensagem enviada a {a} sobre o pedido {o} porque {r}.",
        "{R}. Sua mensagem para {a} (pedido {o}) não foi entregue.",
    ), (
        "o comprador optou por não receber mensagens não solicitadas",
        "o cliente não deseja receber mensagens não solicitadas de vendedores",
    ), (
        "sua conta de vendedor está temporariamente restrita",
        "o prazo para mensagens deste pedido expirou",
    )),
    "nl": ("nl", (
        "We konden het bericht aan {a} voor bestelling {o} niet bezorgen, omdat {r}.",
        "{R}. Je bericht aan {a} (bestelling {o}) is niet bezorgd.",
    ), (
        "de koper ervoor heeft gekozen geen ongevraagde berichten van verkopers te ontvangen",
        "de koper geen ongevraagde berichten van verkopers wil ontvangen",
        "de klant zich heeft afgemeld voor ongevraagde berichten",
    ), (
        "je verkopersaccount tijdelijk is beperkt",
        "de bijlage de limiet van 10 MB overschrijdt",
    )),
    "sv": ("se", (
        "Ditt meddelande till {a} om beställning {o} kunde inte levereras eftersom {r}.",
        "{R}. Meddelandet till {a} (beställning {o}) levererades inte.",
    ), (
        "köparen har valt att inte ta emot oönskade meddelanden från säljare",
        "kunden har valt bort oönskade meddelanden",
    ), (
        "bilagan överskrider gränsen på 10 MB",
    )),
    "pl": ("pl", (
        "Nie mogliśmy dostarczyć wiadomości do {a} dotyczącej zamówienia {o}, ponieważ {r}.",
        "{R}. Wiadomość do {a} (zamówienie {o}) nie została dostarczona.",
    ), (
        "kupujący zdecydował, że nie chce otrzymywać niezamówionych wiadomości od sprzedawców",
        "kupująca zrezygnowała z otrzymywania niechcianych wiadomości",
    ), (
        "okres na wysyłanie wiadomości upłynął",
    )),
    "tr": ("com.tr", (
        "{o} numaralı sipariş için {a} adresine gönderdiğiniz mesaj, {r} için teslim edilemedi.",
        "{R}. {o} numaralı sipariş için {a} adresine gönderdiğiniz mesaj teslim edilemedi.",
    ), (
        "alıcı satıcılardan gelen istenmeyen mesajları almamayı tercih ettiği",
        "müşteri istenmeyen mesajlar almak istemediğini belirttiği",
    ), (
        "mesajınız iletişim yönergelerimize uymadığı",
    )),
    "ar": ("sa", (
        "لم نتمكن من تسليم رسالتك إلى {a} بخصوص الطلب {o} لأن {r}.",
    ), (
        "المشتري اختار عدم تلقي رسائل غير مرغوب فيها من البائعين",
        "العميل رفض الرسائل غير المرغوب فيها",
    ), (
        "حجم المرفق يتجاوز الحد المسموح به",
    )),
    "ja": ("co.jp", (
        "{r}ため、注文 {o} に関する {a} 宛てのメッセージを送信できませんでした。",
        "注文 {o} に関する {a} 宛てのメッセージは送信されませんでした。{R}ためです。",
    ), (
        "購入者が出品者からの未承諾広告メールを受信しないように設定している",
        "お客様が迷惑メールを受け取らない設定にしている",
    ), (
        "メッセージ送信期間が終了した",
    )),
    "zh": ("cn", (
        "由于{r}，您就订单 {o} 发送给 {a} 的消息无法送达。",
    ), (
        "买家已选择不接收来自卖家的未经请求的消息",
        "买家已退订卖家的推广消息",
    ), (
        "该订单的消息发送期限已过",
    )),
}


def _wrap(text: str) -> str:
    """Hard-wrapped at about 40 characters, as a plain-text client sends it."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) > 40:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\r\n".join(lines + [line])


# Surface rewrites: punctuation, spacing and case; Turkish is not upper-cased (the dotless ı
# does not survive a round trip through str.upper, and Turkish mail is not written in capitals).
SURFACE: dict[str, Callable[[str], str]] = {
    "as-is": lambda s: s,
    "double-spaces": lambda s: s.replace(" ", "  "),
    "hard-wrapped": _wrap,
    "upper-case": str.upper,
    "punctuation": lambda s: s.replace(", ", " , ").rstrip(".。") + " !",
    "nbsp-and-tabs": lambda s: s.replace(" ", "\u00a0", 3).replace(" ", "\t", 2),
}


def _notice(tld: str, sentence: str, forwarded: bool) -> bytes:
    body = f"Amazon Seller Support\r\n\r\n{sentence}\r\n\r\nAmazon\r\n"
    head = (f"From: \"Amazon.{tld}\" <auto-communication@amazon.{tld}>\r\nTo: shop@seller.example\r\n"
            "Subject: =?utf-8?q?notice?=\r\nDate: Mon, 06 May 2024 10:00:00 +0000\r\n")
    if forwarded:
        body = (f"FYI\r\n\r\n---------- Forwarded message ---------\r\n{head.replace(chr(13), '')}\r\n\r\n{body}")
        head = "From: Shop <shop@seller.example>\r\nTo: desk@optoutdesk.example\r\nSubject: Fwd: notice\r\n"
    return (head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + body).encode()


def _sentences(code: str, reasons_index: int) -> list[tuple[str, str]]:
    tld, frames, opt_outs, look_alikes = PARAPHRASES[code]
    address = f"{LOCAL}@marketplace.amazon.{tld}"
    reasons = (opt_outs, look_alikes)[reasons_index]
    out = []
    for frame, reason in itertools.product(frames, reasons):
        sentence = frame.format(a=address, o=ORDER, r=reason, R=reason[:1].upper() + reason[1:])
        for name, rewrite in SURFACE.items():
            if name == "upper-case" and code == "tr":
                continue
            out.append((name, rewrite(sentence)))
    return out


@pytest.mark.parametrize("forwarded", [False, True], ids=["direct", "forwarded"])
@pytest.mark.parametrize("code", list(PARAPHRASES))
def test_paraphrased_opt_outs_stay_opt_outs(code: str, forwarded: bool) -> None:
    tld = PARAPHRASES[code][0]
    buyer = Buyer(f"{LOCAL}@marketplace.amazon.{tld}", ORDER, f"marketplace.amazon.{tld}")
    wrong = []
    for name, sentence in _sentences(code, 0):
        result = parse_notice(_notice(tld, sentence, forwarded))
        if result.kind is not Kind.OPT_OUT or result.buyers != (buyer,):
            wrong.append((name, sentence, result.kind.value, result.reason))
    assert wrong == []


@pytest.mark.parametrize("forwarded", [False, True], ids=["direct", "forwarded"])
@pytest.mark.parametrize("code", list(PARAPHRASES))
def test_paraphrased_rejections_stay_rejections(code: str, forwarded: bool) -> None:
    tld = PARAPHRASES[code][0]
    wrong = []
    for name, sentence in _sentences(code, 1):
        result = parse_notice(_notice(tld, sentence, forwarded))
        if result.kind is not Kind.NOT_OPT_OUT or "not an opt-out" not in (result.reason or ""):
            wrong.append((name, sentence, result.kind.value, result.reason))
    assert wrong == []


def test_the_generator_makes_many_rewrites() -> None:
    count = sum(len(_sentences(code, n)) for code in PARAPHRASES for n in (0, 1))
    assert count >= 400
