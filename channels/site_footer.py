"""What every public page carries at its foot under 《政府网站发展指引》(国办发〔2017〕47号): the
sponsor (主办单位) and operator (承办单位), the website identifier code (网站标识码), the ICP
filing number linked to the MIIT registry, the public-security filing number linked to its
record, contact address and phone, and the 我为政府网站找错 link, from the `[site]` settings.
A setting left empty is not shown: no placeholder ever reaches a page."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

KEYS = ("sponsor", "operator", "site_code", "icp", "police_record", "address", "phone",
        "error_report_url")  # fmt: skip
ICP_REGISTRY = "https://beian.miit.gov.cn/"
POLICE_RECORD = "https://beian.mps.gov.cn/#/query/webSearch?code={code}"


def footer(site: Mapping[str, Any]) -> dict[str, Any]:
    """The footer's parts for the templates: every key present, "" or None where unset."""
    text = {key: str(site.get(key) or "").strip() for key in KEYS}
    found: dict[str, Any] = {
        key: text[key] for key in ("sponsor", "operator", "site_code", "address", "phone")
    }
    found["icp"] = {"text": text["icp"], "href": ICP_REGISTRY} if text["icp"] else None
    found["police_record"] = None
    if text["police_record"]:
        digits = re.sub(r"\D", "", text["police_record"])
        href = POLICE_RECORD.format(code=digits) if digits else None
        found["police_record"] = {"text": text["police_record"], "href": href}
    url = text["error_report_url"]
    found["error_report"] = url.replace("{site_code}", quote(text["site_code"], safe=""))
    return found
