"""The account's event push (服务器配置): WeChat tells us a publish job has finished.

WeChat first checks the URL with a GET carrying `echostr`, then POSTs events as XML; both are
signed: SHA1 of the sorted callback token, timestamp and nonce. Only plain-text mode (明文模式)
is read. A PUBLISHJOBFINISH event names its `publish_id`: the delivery that submitted it is
confirmed at once (the confirmation still asks `freepublish/get`). Anything else is answered
"success" and ignored, as WeChat expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xmltodict
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from channels.base import Inbound

BODY_MAX = 65_536


def receive(
    settings: Mapping[str, Any], method: str, query: Mapping[str, str], body: bytes
) -> Inbound:
    """Answer one push to the account's hook (see the module's docstring)."""
    token = str(settings.get("callback_token") or "")
    if not token:
        return Inbound(404, "this account has no callback_token: event push is not configured")
    try:
        check_signature(token, query.get("signature", ""), query.get("timestamp", ""),
                        query.get("nonce", ""))  # fmt: skip
    except InvalidSignatureException:
        return Inbound(403, "invalid signature")
    if method == "GET":  # WeChat verifies the URL: echo what it sent
        return Inbound(200, query.get("echostr", ""))
    if len(body) > BODY_MAX:
        return Inbound(413, "event too large")
    try:
        xml = xmltodict.parse(body, disable_entities=True).get("xml") or {}
    except Exception:
        return Inbound(400, "not an XML event")
    info = xml.get("PublishEventInfo") if xml.get("Event") == "PUBLISHJOBFINISH" else None
    publish_id = str(info.get("publish_id") or "") if isinstance(info, dict) else ""
    return Inbound(200, "success", {"publish_id": publish_id} if publish_id else {})
