"""English notices (amazon.com, .co.uk, .ca, .in, .com.au, .sg, .ae …).

Opt-out sentence verified on public copies (corpus s01-s05): "We were unable to deliver the
message you sent for order [NNN-NNNNNNN-NNNNNNN] because the buyer has chosen to opt out of
receiving unsolicited messages from sellers." Look-alike wording follows s17-s19 and Seller
Central help pages; it is deliberately a little loose because these only ever *reject*.
"""

from __future__ import annotations

from typing import Final

from . import Language, LookAlike

LANGUAGE: Final = Language(
    code="en",
    opt_out=(
        r"buyer has (?:chosen|elected|decided|opted) to opt[- ]?out of receiving (?:unsolicited|proactive)",
        r"buyer has opted out of receiving (?:unsolicited|proactive) messages",
    ),
    look_alikes={
        LookAlike.UNSUBSCRIBE_LINK: (
            r"(?:contains?|includes?|including) (?:an? )?(?:unsubscribe|opt[- ]?out) link",
            r"(?:unsubscribe|opt[- ]?out) links? (?:is|are) not (?:permitted|allowed)",
        ),
        LookAlike.CONTENT_POLICY: (
            r"did not (?:meet|follow|comply with) (?:the|our) (?:buyer-seller messaging )?(?:communication )?guidelines",
            r"contains? content that is not permitted",
            # "because it contains content that violates our Buyer-Seller Messaging policies"
            # (wrappings_marketplaces_lookalikes/lookalike_violates_policy_faq_mentions_optout.eml)
            r"contains? content that violates",
            # "because it contains an external link, which is not permitted by our communication
            # guidelines" (tests/support/notices.py::content_policy_notice, the SMTP intake test)
            r"contains? (?:an? )?external links?",
            r"not permitted by (?:our|the) (?:communication|messaging) guidelines",
            r"violat\w* (?:our|the) (?:communication|messaging) (?:guidelines|policies)",
        ),
        LookAlike.ATTACHMENT: (
            r"includes? an attachment",
            r"attachment (?:whose )?(?:file )?type",
            r"attachments? (?:is|are|was|were) not (?:supported|accepted|permitted|allowed)",
            # "includes a file type that is not supported (.docm)" (wrappings_marketplaces_lookalikes/lookalike_unsupported_file_type.eml)
            r"file type (?:that (?:is|was) )?not (?:supported|accepted|permitted|allowed)",
            r"unsupported file type",
        ),
        LookAlike.RESTRICTED_ACCOUNT: (
            r"(?:account|you) (?:has |have |is |was )?(?:been )?(?:temporarily )?restricted from sending",
        ),
        LookAlike.UNAUTHORISED_SENDER: (
            r"unauthori[sz]ed (?:sender|e-?mail address|address)",
            r"(?:e-?mail )?address that (?:is|has) not (?:been )?(?:authori[sz]ed|approved|registered)",
            r"not an? (?:authori[sz]ed|approved|registered) (?:sender|e-?mail address)",
        ),
        LookAlike.FRAUD_FILTER: (
            r"fraud(?:ulent)?[- ](?:filter|detection|prevention|screening)",
            r"did not pass (?:our |amazon's )?(?:fraud|security|spam)",
            r"flagged (?:as|by) (?:potential |possible )?fraud",
        ),
        LookAlike.CLOSED_ADDRESS: (
            # "the buyer's e-mail address x@… is no longer active": the address may sit in between
            r"address (?:\S+ )?(?:is|has been|was) (?:closed|deactivated|no longer (?:active|valid|in use))",
            r"(?:account|mailbox) (?:is|has been|was) closed",
            r"closed (?:e-?mail )?address",
            # "the buyer's e-mail address x@… is invalid or the buyer's account is no longer active"
            # (wrappings_marketplaces_lookalikes/lookalike_closed_account_invalid_address.eml)
            r"address (?:\S+ )?is (?:invalid|not valid)",
            r"account is no longer active",
        ),
        LookAlike.ORDER_NOTIFICATION: (
            r"sold, ship now",
            r"you have a new order",
            r"please ship this order",
        ),
        LookAlike.SENT_COPY: (
            r"(?:this is )?a copy of (?:the |your )?(?:e-?mail|message) (?:that )?you (?:have )?sent",
            r"you sent the following message",
        ),
        LookAlike.CLAIM: (r"a-to-z guarantee claim",),  # wrappings_marketplaces_lookalikes/lookalike_atoz_claim.eml
        LookAlike.CANCELLATION: (
            r"cancellation request",
            r"request(?:ed)? (?:to cancel|a cancellation|the cancellation)",
        ),
    },
    # The line a mail client writes above a quoted reply.
    attribution=(r"\bwrote\s*:$",),
    # Key terms by concept, every form written out (see ``matcher``).
    terms={
        'buyer': ('buyer', 'customer', 'recipient', 'shopper', 'purchaser'),
        'out': ('opt out', 'opted out', 'opts out', 'opting out', 'optout', 'not receive', 'not to receive', 'not receiving', 'not be contacted', 'not to be contacted', 'no longer receive', 'no longer receiving', 'no longer wishes', 'does not want', "doesn't want", 'do not want', 'does not wish', "doesn't wish", 'declined', 'declines', 'refused', 'refuses', 'unsubscribed', 'stop receiving', 'turned off', 'switched off', 'disabled'),
        'unsolicited': ('unsolicited', 'proactive', 'unrequested', 'unwanted', 'non essential', 'nonessential', 'promotional', 'marketing', 'unprompted'),
        'messages': ('message', 'messages', 'communication', 'communications', 'email', 'emails', 'e mail', 'e mails', 'mail', 'contact', 'messaging'),
        'attachment': ('attachment', 'attachments', 'attached', 'file', 'files'),
        'size': ('size', 'large', 'larger', 'too big', 'bigger', 'exceeds', 'exceeded', 'exceed', 'exceeding', 'limit', 'mb', 'megabytes'),
        'window': ('window', 'period', 'timeframe', 'time frame', 'days'),
        'closed': ('closed', 'expired', 'ended', 'passed', 'elapsed', 'lapsed', 'no longer open'),
        'account': ('account', 'selling account', 'privileges'),
        'restricted': ('restricted', 'suspended', 'limited', 'deactivated', 'disabled', 'blocked', 'paused'),
        'policy': ('policy', 'policies', 'guideline', 'guidelines', 'rules'),
        'violate': ('violates', 'violate', 'violated', 'violating', 'violation', 'breach', 'breaches', 'prohibited', 'not permitted', 'not allowed', 'does not comply', 'did not comply', 'does not meet', 'did not meet', 'not compliant'),
    },
    # What introduces the cause in a rejection's sentence (see ``cause_sentence``).
    causes=('because', 'due to', 'as you', 'as the', 'since you', 'since the'),
    hedges=('if', 'when', 'whenever', 'unless', 'once'),
    # "a buyer who has chosen … will": a rule about buyers (false_opt_outs/policy_update_mentions_opt_out_choice.eml).
    modal=('can', 'could', 'may', 'might', 'should', 'would', 'who', 'will'),
    negation=('not', 'never', "hasn't", "didn't", "hadn't", "haven't"),
    subjects=("Your message to a buyer could not be delivered", 'Message to buyer undeliverable', 'Your message could not be delivered', 'Undeliverable: message to buyer', 'Delivery failure: your message to a buyer'),
    labels={
        "from": ("from",),
        "subject": ("subject",),
        "date": ("date", "sent"),
        "to": ("to", "cc"),
    },
    # "Good to know: if the buyer has chosen to opt out …"
    # (replies_mime_oddities_bulk_mail/lookalike_bsm_delivered_confirmation_if_opted_out.eml); "… or when the buyer has
    # chosen to opt out …" (the FAQ of wrappings_marketplaces_lookalikes/lookalike_violates_policy_faq_mentions_optout.eml).
    conditional=(r"\b(?:if|when|whenever|unless|once) (?:the |a )?$",),
)
