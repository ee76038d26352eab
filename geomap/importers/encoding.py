"""Text encodings of imported files: UTF-8, else GB18030, and the text bytes of a dBASE file.

:func:`detect_encoding` picks the encoding every chunk decodes in; :func:`dbf_text` is a
small dBASE (.dbf) parser that pulls out field names and character values, so a
Shapefile's encoding is guessed from its own text before GDAL decodes it.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterable


def detect_encoding(chunks: Iterable[bytes], cut: Iterable[bytes] = ()) -> str | None:
    """'utf-8' if every chunk is strict UTF-8, else 'gb18030' if they all decode so, else None.

    UTF-8 first: GBK text is almost never valid UTF-8, while UTF-8 Chinese text often is
    valid GB18030 (as the wrong characters), so the other order would produce mojibake.

    Parameters
    ----------
    chunks : iterable of bytes
        Text that must decode whole.
    cut : iterable of bytes
        Text that may end inside a character (fixed-width values that fill their width).

    Returns
    -------
    str or None
        ``"utf-8"``, ``"gb18030"``, or None when neither decodes everything.
    """
    chunks, cut = list(chunks), list(cut)
    for candidate in ("utf-8", "gb18030"):
        if decodes(chunks, cut, candidate):
            return candidate
    return None


def decodes(chunks: list[bytes], cut: list[bytes], encoding: str) -> bool:
    """True if ``chunks`` decode strictly and ``cut`` too but for a cut last character.

    dBASE values and field names have fixed byte widths, and writers cut long text at the
    width, sometimes inside a multi-byte character: for values that fill their width
    (``cut``), an incomplete character at the end must not count as a wrong guess.
    """
    try:
        b"\n".join(chunks).decode(encoding)  # all at once: fast
        for chunk in cut:
            codecs.getincrementaldecoder(encoding)().decode(chunk, final=False)
    except UnicodeDecodeError:
        return False
    return True


def dbf_text(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The raw bytes of a dBASE file's field names and character values.

    Returns the values shorter than their field and, apart, those that fill it (and may
    have been cut inside a character).
    """
    if len(data) < 32:
        raise ValueError("too short for a dBASE header")
    records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields: list[tuple[str, int, int]] = []  # (type, offset in record, length)
    chunks: list[bytes] = []
    full: list[bytes] = []
    offset = 1  # byte 0 of every record is the deletion flag
    pos = 32
    while pos + 32 <= min(header_len, len(data)) and data[pos] != 0x0D:
        descriptor = data[pos : pos + 32]
        name = descriptor[:11].split(b"\x00", 1)[0]
        (full if len(name) >= 10 else chunks).append(name)
        ftype, flen = chr(descriptor[11]), descriptor[16]
        fields.append((ftype, offset, flen))
        offset += flen
        pos += 32
    text_fields = [(o, n) for t, o, n in fields if t in "CM"]
    for r in range(records):
        start = header_len + r * record_len
        record = data[start : start + record_len]
        if len(record) < record_len:
            break
        for o, n in text_fields:
            value = record[o : o + n].rstrip(b" \x00")
            if value:
                (full if len(value) == n else chunks).append(value)
    return chunks, full
