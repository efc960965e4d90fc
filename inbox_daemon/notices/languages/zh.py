"""Simplified Chinese notices (amazon.cn). Wording RECONSTRUCTED from the English notice
(replies_mime_oddities_bulk_mail/cn_direct_zh_gb2312_base64.eml): "由于买家已选择不接收来自卖家的未经请求的消息，
我们无法递送您就订单 … 发送的消息。" Normalised text has no spaces between CJK characters.
Forward labels are those of Foxmail/QQ Mail and Chinese Outlook.
"""

from __future__ import annotations

from . import Language, LookAlike

LANGUAGE = Language(
    code="zh",
    opt_out=(
        r"买家已?选择不(?:接收|接受)(?:来自)?卖家的?(?:未经请求|未经许可|主动发送)的?(?:消息|邮件|信息)",
    ),
    look_alikes={
        LookAlike.CONTENT_POLICY: (r"不符合(?:买家与卖家消息|沟通)(?:服务)?(?:政策|准则)",),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"写道\s*[:：]$",),
    subjects=("您发送给买家的消息无法送达",),
    labels={"from": ("发件人",), "subject": ("主题",), "date": ("发送时间", "日期"), "to": ("收件人",)},
)
