"""Tomcat's escaping of logged values, undone.

Recent Tomcat versions write `"` as `\\"`, a backslash as `\\\\`, a few controls as `\\n`,
`\\r`, `\\t`, `\\b`, `\\f`, and every other character outside printable ASCII as `\\uXXXX`
(one UTF-16 code unit each, so characters beyond the BMP come as surrogate pairs). Older
versions write raw UTF-8, which passes through unchanged.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _replace(match: re.Match[str]) -> str:
    body = match.group(1)
    if len(body) == 5:
        return chr(int(body[1:], 16))
    return _SIMPLE.get(body, body)


def unescape(text: str) -> str:
    """Decode Tomcat's escapes; text without a backslash is returned as it is."""
    if "\\" not in text:
        return text
    decoded = _ESCAPE.sub(_replace, text)
    # Join surrogate pairs that came as two \\uXXXX escapes; lone surrogates become U+FFFD.
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
