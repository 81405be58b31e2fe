"""Paths as text for reports: Go-style escapes for what a TSV cell cannot hold as it is.

``\\t``, ``\\n``, ``\\r`` and ``\\\\`` for tab, newline, carriage return and backslash, ``\\xNN``
for other control characters and for bytes that are not UTF-8; valid UTF-8 is kept.

>>> go_escape(b"/a\\tb/\\xc3\\xa9/\\x80")
'/a\\\\tb/é/\\\\x80'
"""

from __future__ import annotations

_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def go_escape(raw: bytes) -> str:
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)
