"""Simplified Chinese notices (amazon.cn). Wording RECONSTRUCTED from the English notice
(replies_mime_oddities_bulk_mail/cn_direct_zh_gb2312_base64.eml): "由于买家已选择不接收来自卖家的未经请求的消息，
我们无法递送您就订单 … 发送的消息。" Normalised text has no spaces between CJK characters.
Forward labels are those of Foxmail/QQ Mail and Chinese Outlook.
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="zh",
    opt_out=(
        r"买家已?选择不(?:接收|接受)(?:来自)?卖家的?(?:未经请求|未经许可|主动发送)的?(?:消息|邮件|信息)",
    ),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"不符合(?:买家与卖家消息|沟通)(?:服务)?(?:政策|准则)",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"写道\s*[:：]$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('买家', '顾客', '客户', '收件人'),
        'out': ('不接收', '不接受', '不希望接收', '拒绝', '退订', '关闭'),
        'unsolicited': ('未经请求', '未经许可', '主动发送', '不请自来', '推广', '营销'),
        'messages': ('消息', '邮件', '信息'),
        'attachment': ('附件', '文件'),
        'size': ('大小', '超过', '上限', '过大'),
        'window': ('期限', '时限', '期间', '天内', '窗口'),
        'closed': ('已过', '已结束', '已关闭', '过期', '已截止'),
        'account': ('账户', '帐户', '账号'),
        'restricted': ('受限', '限制', '暂停', '冻结'),
        'policy': ('政策', '准则', '指南', '规定'),
        'violate': ('违反', '不符合', '不允许', '禁止'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('由于', '因为', '原因'),
    hedges=('如果', '若', '假如'),
    modal=(),
    negation=(),
    subjects=("您发送给买家的消息无法送达", '您的消息无法发送给买家'),
    labels={"from": ("发件人",), "subject": ("主题",), "date": ("发送时间", "日期"), "to": ("收件人",)},
)
