"""The codes that identify agencies, regions and projects, and the patterns they must match."""

from __future__ import annotations

import re

# 统一社会信用代码: 18 characters from the national standard's alphabet (GB 32100-2015).
CREDIT_CODE_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
# 行政区划代码: six ASCII digits (GB/T 2260); `\d` would let full-width and other digits in.
REGION_CODE_PATTERN = r"^[0-9]{6}$"
# Project codes become part of public URLs (/projects/{code}/): a safe alphabet only.
PROJECT_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

CREDIT_CODE = re.compile(CREDIT_CODE_PATTERN)
REGION_CODE = re.compile(REGION_CODE_PATTERN)
