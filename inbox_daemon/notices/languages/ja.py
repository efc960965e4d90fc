"""Japanese notices (amazon.co.jp). Subject and first sentence as quoted on the Seller Central JP
forum (corpus s16): "購入者が出品者からの未承諾広告メールを受信しないように設定しているため、
注文 … に関するメッセージを送信できませんでした。" Normalised text has no spaces between CJK
characters, so a sentence wrapped across lines still matches.
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="ja",
    opt_out=(
        r"購入者が出品者からの未承諾広告メールを受信しない(?:よう)?に?設定",
        r"購入者が出品者からの(?:未承諾の?|不要な)メッセージを受け取らない(?:よう)?に?設定",
    ),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (r"配信停止(?:の)?リンク",),
        LookAlike.CONTENT_POLICY: (r"ガイドラインに(?:準拠|違反)", r"許可されていない(?:コンテンツ|内容)"),
        LookAlike.ATTACHMENT: (r"添付ファイル(?:の種類|の形式)",),
        LookAlike.RESTRICTED_ACCOUNT: (r"アカウント(?:は|が)?(?:一時的に)?(?:制限|停止)",),
        LookAlike.UNAUTHORISED_SENDER: (r"(?:承認|許可)されていない(?:メール)?アドレス",),
        LookAlike.FRAUD_FILTER: (r"不正(?:検知|防止)?フィルター",),
        LookAlike.CLOSED_ADDRESS: (r"(?:メール)?アドレス(?:は|が)(?:閉鎖|無効)",),
        LookAlike.ORDER_NOTIFICATION: (r"注文が確定しました", r"商品を発送してください"),
        LookAlike.CANCELLATION: (r"キャンセル(?:の)?リクエスト",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"のメッセージ\s*[:：]$", r"書きました\s*[:：]$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('購入者', 'お客様', '買い手'),
        'out': ('受信しない', '受け取らない', '受信を拒否', '拒否', '停止', 'オフ', '希望しない', '受け付けない', '希望されていない'),
        'unsolicited': ('未承諾', '不要な', '迷惑', '広告', '宣伝'),
        'messages': ('メール', 'メッセージ', '連絡'),
        'attachment': ('添付', 'ファイル'),
        'size': ('サイズ', '容量', '上限', '超え', '大き'),
        'window': ('期間', '期限', '日以内'),
        'closed': ('終了', '過ぎ', '経過', '切れ'),
        'account': ('アカウント',),
        'restricted': ('制限', '停止'),
        'policy': ('ガイドライン', 'ポリシー', '規約', '規定'),
        'violate': ('違反', '準拠していない', '許可されていない', '禁止'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('ため', 'ので', 'により', 'によって'),
    hedges=('場合', 'もし'),
    modal=(),
    negation=(),
    subjects=("購入者へのメッセージを送信できませんでした", '購入者へのメッセージが配信されませんでした', 'メッセージを送信できませんでした'),
    labels={
        "from": ("差出人", "送信者"),
        "subject": ("件名",),
        "date": ("日付", "送信日時"),
        "to": ("宛先",),
    },
)
