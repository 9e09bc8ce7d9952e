"""The text encoding of an export, decided from its bytes (or declared), never guessed.

- A byte-order mark names the encoding (UTF-8, UTF-16 LE/BE); UTF-16 without one shows in
  its bytes (every other byte NUL in mostly-ASCII text).
- Bytes that are valid UTF-8 are UTF-8: no other encoding's non-ASCII text forms valid UTF-8
  sequences by accident.
- Anything else is an 8-bit or East Asian code page. The evidence is the fields holding
  non-ASCII bytes; the detector (charset-normalizer) rates every code page that reads them
  by how much of the text is mess (symbols inside words, unlikely sequences) and how
  coherent it is as a language. The readings with the least mess, within a tolerance, are
  the candidates:

  - one reading (every candidate gives the same text), or one clearly more coherent than
    the others: that one (Shift-JIS and GB18030 customer names are decided so);
  - Windows-1252 among them, or too little evidence for the detector (a few non-ASCII
    bytes), or several different readings: Windows-1252 (the code page of Excel on Western
    Windows; it reads every printable latin-1 character the same) where it reads the file
    as text and no rival reading is text too. ISO-8859-15 is a rival where the file has
    bytes it reads differently (``0xA4`` is ``¤`` or ``€``) and none it reads as a control
    character (``0x80``-``0x9F``, Windows' ``“ ” – €``); latin-1 is none (its reading of
    ``0x80``-``0x9F`` is control characters, which no export holds as text). Any other code
    page is a rival where its reading differs and every field of it reads as text a person
    wrote: on a few bytes every code page Windows writes, with enough evidence only the
    detector's least messy readings. A reading is text a person wrote where each word is in
    one script (``Cфte`` or ``C<Han>te`` is no word), the accented letters of each field
    belong to one language's alphabet (``Crème brûlée`` is French; the Central European
    reading of the same bytes, ``Crčme brűlée``, is no language), a currency sign touches
    no letter (``£40.00``; not ``£ódŸ``), a lone letter is not glued to a number
    (``Ł40.00``), a symbol or an ellipsis does not sit inside a word, and no spacing accent
    (``˝``), combining mark or private code point stands alone. With a rival the file is
    refused with a line read both ways: a few Czech, Turkish, Russian or Polish words are
    never landed in Windows-1252's letters (``Plzeò``, ``Ýstanbul``, ``Ìîñêâà``, ``£ódŸ``),
    and ``São`` (``Săo`` in Central European) waits for a declaration where nothing else
    in the file decides.

  A declared encoding (a profile's ``encoding``, or the source's in ``LEADSCORE_FORMATS``) is
  used where it is consistent with the bytes: it reads every byte, gives no control
  character, and the file is not valid UTF-8 with non-ASCII text (that evidence wins, and
  the contradiction is an error naming the file and a line read both ways).

The chosen encoding must read the whole file, not only the evidence. No Dagster imports.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

import charset_normalizer

WESTERN = "cp1252"
LATIN9 = "iso8859-15"
# where Windows-1252 (and latin-1) and ISO-8859-15 give different printable characters
# the code pages Windows and Excel write: the rival readings of a few non-ASCII bytes
CODE_PAGES = ("cp1252", "iso8859-15", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257",
              "cp1255", "cp1256", "cp874", "cp932", "gb18030", "big5", "cp949")
LATIN9_DIFFERS = re.compile(rb"[\xa4\xa6\xa8\xb4\xb8\xbc\xbd\xbe]")
WINDOWS_ONLY = re.compile(rb"[\x80-\x9f]")  # printable in Windows-1252 only
# the fields holding non-ASCII bytes: the evidence (no East Asian code page uses a
# delimiter, quote or line break byte inside a character)
NON_ASCII_FIELD = re.compile(rb'[^,;\t\r\n"]*[\x80-\xff][^,;\t\r\n"]*')
NON_ASCII = re.compile(r"[^\x00-\x7f]")
ASCII = bytes(range(0x20, 0x7f)) + b"\t\r\n"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
EVIDENCE_BYTES = 256 * 1024
CHUNK = 512
TOLERANCE = 0.01   # a mess ratio within this of the least: as good a reading
# how much more coherent (as a language) one reading must be than another to decide between
# equally tidy readings; on a few words coherence is noise, so a tie stays a tie
COHERENCE_MARGIN = 0.05
# fewer non-ASCII bytes than this (a "£", one "Côte d'Ivoire") and the detector's ratings are
# noise: it decides nothing, and a file Windows-1252 reads as text is read so
MIN_DECISIVE = 24
SHOWN = 60


# The accented Latin letters of each language written with these code pages: a field's
# accented letters all come from one of them, or the reading is not what a person wrote.
ALPHABETS = tuple(frozenset(letters) for letters in (
    "àâæçéèêëîïôœùûüÿ",        # French
    "äöüßé",                    # German
    "áéíñóúüàèïç",              # Spanish, Catalan
    "áâãàçéêíóôõúü",            # Portuguese
    "àèéìíîòóùú",               # Italian
    "áéíóúàèëïöüĳ",             # Dutch
    "æøåéèêóòôü",               # Danish, Norwegian
    "åäöéü",                    # Swedish
    "äöåšž",                    # Finnish, Estonian (õ below)
    "äõöüšž",                   # Estonian
    "áðéíóúýþæö",               # Icelandic
    "ąćęłńóśźż",                # Polish
    "áčďéěíňóřšťúůýž",          # Czech
    "áäčďéíĺľňóôŕšťúýž",        # Slovak
    "áéíóöőúüű",                # Hungarian
    "ăâîșşțţ",                  # Romanian
    "čćđšž",                    # Croatian, Bosnian, Serbian, Slovene
    "çğıöşüâî",                 # Turkish
    "ąčęėįšųūž",                # Lithuanian
    "āčēģīķļņšūž",              # Latvian
    "çë",                       # Albanian
    "âêîôûŵŷáéíóúàèìòùäëïöüẁẃẅỳý",  # Welsh
    "ċġħżàèìòù",                # Maltese
))
# script of a letter, from the first word of its Unicode name; the East Asian ones are one
EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH", "FULLWIDTH", "IDEOGRAPHIC",
              "HANGUL"}
ORDINALS = "ªºµ"   # letters by Unicode, symbols in use (1º, Nº, 5 µm)
JOINERS = "’‘ʼ‐‑–—·"   # punctuation that stands between two letters (l’été, Jean–Luc)


class EncodingProblem(ValueError):
    """Bytes no (or more than one) encoding reads as text; the message says why."""


def codec_name(name: str) -> str:
    """Python's canonical codec name (``latin-1`` -> ``iso8859-1``), or EncodingProblem."""
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise EncodingProblem(f"unknown text encoding {name!r}") from exc


def utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le`` / ``utf-16-be`` when the bytes are UTF-16 text with no byte-order mark."""
    sample = head[:4096]
    half = len(sample) // 2
    if half < 8:
        return None
    even = sample[0::2].count(0) / half
    odd = sample[1::2].count(0) / half
    if odd > 0.4 and even < 0.02:
        return "utf-16-le"
    if even > 0.4 and odd < 0.02:
        return "utf-16-be"
    return None


def decide_encoding(file: str, data: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a file's bytes (no byte-order mark); see the module doc."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if declared:
        return _declared(file, data, text, codec_name(declared), declared)
    if text is not None:
        return text, "utf-8"
    evidence = b"\n".join(NON_ASCII_FIELD.findall(data))[:EVIDENCE_BYTES]
    readings = _readings(evidence)
    if not readings and sum(b >= 0x80 for b in evidence) < MIN_DECISIVE \
            and _reads_as_text(data, WESTERN):
        return _western(file, data, evidence, readings)  # too few bytes: the Western default
    if not readings:
        raise EncodingProblem(
            f"{file}: no text encoding reads these bytes as text (not UTF-8; no code page "
            f"reads line {_first_non_ascii_line(data)}, {_line(data)!r}, without mess); "
            f"declare `encoding` if it is text")
    if codec_name(WESTERN) in readings:
        return _western(file, data, evidence, readings)
    # one text per reading, the most coherent first
    distinct: dict[str, tuple[str, float]] = {}
    for name, coherence in sorted(readings.items(), key=lambda r: -r[1]):
        distinct.setdefault(evidence.decode(name, errors="replace"), (name, coherence))
    ranked = list(distinct.values())
    decisive = len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= COHERENCE_MARGIN
    if decisive and sum(b >= 0x80 for b in evidence) >= MIN_DECISIVE:
        name = ranked[0][0]
        return _whole(file, data, name), name
    if _reads_as_text(data, WESTERN):
        return _western(file, data, evidence, readings)  # the detector cannot tell
    first, second = ranked[0][0], ranked[1][0] if len(ranked) > 1 else WESTERN
    raise EncodingProblem(f"{file}: {_both(data, first, second)}; declare "
                          f"`encoding` in the profile or source settings")


def _reads_as_text(data: bytes, name: str) -> bool:
    try:
        return CONTROL.search(data.decode(name)) is None
    except UnicodeDecodeError:
        return False


def _readings(evidence: bytes) -> dict[str, float]:
    """Codec -> coherence of the code pages whose reading of these bytes has the least mess
    (ties within TOLERANCE)."""
    steps = max(1, min(128, len(evidence) // CHUNK))
    matches = list(charset_normalizer.from_bytes(
        evidence, steps=steps, chunk_size=min(CHUNK, len(evidence))))
    if not matches:
        return {}
    best = min(m.chaos for m in matches)
    out: dict[str, float] = {}
    for m in matches:
        if m.chaos <= best + TOLERANCE:
            name = codec_name(m.encoding)
            out[name] = max(out.get(name, 0.0), m.coherence)
    return out


def _western(file: str, data: bytes, evidence: bytes,
             readings: dict[str, float]) -> tuple[str, str]:
    """Windows-1252, where no rival reading of the evidence is text as well (module doc)."""
    found = LATIN9_DIFFERS.search(data)
    # ISO-8859-15 reads 0x80-0x9F as control characters: such a byte rules it out
    if found and not WINDOWS_ONLY.search(data):
        raise EncodingProblem(
            f"{file}: {_both(data, WESTERN, LATIN9, at=found.start())}; declare `encoding` "
            f"(cp1252 or iso-8859-15) in the profile or source settings")
    rival = _rival(evidence, readings)
    if rival:
        raise EncodingProblem(f"{file}: {_both(data, WESTERN, rival)}; declare `encoding` "
                              f"in the profile or source settings")
    return _whole(file, data, WESTERN), WESTERN


def _rival(evidence: bytes, readings: dict[str, float]) -> str | None:
    """A code page whose reading of the evidence differs from Windows-1252's and reads as text
    a person wrote (module doc). With enough evidence the detector's verdict on mess stands,
    so only its least messy readings are rivals; on a few bytes every code page Windows
    writes is one."""
    decisive = sum(b >= 0x80 for b in evidence) >= MIN_DECISIVE
    names = list(readings) if decisive and readings else [*CODE_PAGES, *readings]
    western = evidence.decode(WESTERN, errors="replace")
    # the code pages Windows writes first: the rival a person most likely meant is shown
    for name in sorted(dict.fromkeys(names), key=lambda n: (n not in CODE_PAGES,
                                                             CODE_PAGES.index(n)
                                                             if n in CODE_PAGES else 0)):
        if not _ascii_compatible(name):
            continue
        text = _text(evidence, name)
        if text is not None and text != western and all(
                _written(field, alphabets=True) for field in text.split("\n")):
            return name
    return None


def _ascii_compatible(name: str) -> bool:
    """Whether the code page reads ASCII bytes as ASCII (not EBCDIC, not UTF-16): the rest
    of the file is ASCII, so no other reading is the file's."""
    try:
        return ASCII.decode(name) == ASCII.decode("ascii")
    except UnicodeDecodeError:
        return False


def _text(evidence: bytes, name: str) -> str | None:
    """The code page's reading of the evidence, None where it cannot read it as text."""
    try:
        text = evidence.decode(name)
    except UnicodeDecodeError:
        return None
    return None if CONTROL.search(text) else text


def _script(char: str) -> str:
    if char.isascii():
        return "LATIN"
    word = unicodedata.name(char, "?").split()[0]
    return "EAST_ASIAN" if word in EAST_ASIAN else word


def _letter(char: str) -> bool:
    return char.isalpha() and char not in ORDINALS


def _written(field: str, alphabets: bool) -> bool:
    """Whether a field's non-ASCII characters read as text a person wrote (module doc)."""
    accented: set[str] = set()
    for found in NON_ASCII.finditer(field):
        i = found.start()
        char = found.group()
        before = field[i - 1] if i else " "
        after = field[i + 1] if i + 1 < len(field) else " "
        if _letter(char):
            start, end = i, i + 1
            while start and _letter(field[start - 1]):
                start -= 1
            while end < len(field) and _letter(field[end]):
                end += 1
            word = field[start:end]
            script = _script(char)
            if any(_script(c) != script for c in word):
                return False
            if script != "EAST_ASIAN" and len(word) == 1 and (
                    field[start - 1:start].isdigit() or field[end:end + 1].isdigit()):
                return False  # "Ł40.00": a lone letter glued to a number
            lower = char.lower()[:1]   # "İ" lowers to "i" and a combining dot
            if script == "LATIN" and not lower.isascii():
                accented.add(lower)
            continue
        category = unicodedata.category(char)
        if category[0] == "P":  # quotes, dashes, ellipsis, ¡ ¿ « »
            if _script(char) == "EAST_ASIAN" and any(_script(c) == "LATIN"
                                                      for c in field if c.isalpha()):
                return False
            if _letter(before) and _letter(after) and char not in JOINERS:
                return False  # "D…COR": only an apostrophe or a dash joins two letters
            continue
        if category in ("Mn", "Mc", "Me", "Sk", "Co", "Cn", "Cs", "Cf"):
            return False  # an accent on its own; a private or unassigned code point
        if category == "Nd" and (before.isascii() and before.isdigit()
                                 or after.isascii() and after.isdigit()):
            return False  # another script's digit inside an ASCII number
        if category == "Sc" and (_letter(before) or _letter(after)):
            return False  # a currency sign touching a letter
        if _letter(before) and _letter(after):
            return False  # a symbol inside a word
        for near in (before, after):
            if not near.isascii() and not _letter(near) \
                    and unicodedata.category(near)[0] != "P":
                return False  # two symbols side by side
    return not alphabets or not accented or any(accented <= a for a in ALPHABETS)


def _declared(file: str, data: bytes, utf8: str | None, name: str,
              spelled: str) -> tuple[str, str]:
    if name != "utf-8" and utf8 is not None and not data.isascii():
        raise EncodingProblem(
            f"{file}: declared encoding {spelled!r} contradicts the bytes, which are valid "
            f"UTF-8: {_both(data, 'utf-8', name, ambiguity=False)}")
    return _whole(file, data, name, spelled), name


def _whole(file: str, data: bytes, name: str, spelled: str | None = None) -> str:
    what = f"declared encoding {spelled!r}" if spelled else f"encoding {name}"
    try:
        text = data.decode(name)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EncodingProblem(f"{file}: the {what} cannot read byte 0x{data[exc.start]:02x} "
                              f"on line {line}") from exc
    control = CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        raise EncodingProblem(f"{file}: the {what} reads a control character "
                              f"(U+{ord(control.group()):04X}) on line {line}, not text")
    return text


def _first_non_ascii_line(data: bytes) -> int:
    found = re.search(rb"[\x80-\xff]", data)
    return data.count(b"\n", 0, found.start() if found else 0) + 1


def _line(data: bytes, at: int | None = None) -> bytes:
    """The line holding byte ``at`` (default: the first non-ASCII byte), cut to SHOWN bytes
    around it."""
    if at is None:
        found = re.search(rb"[\x80-\xff]", data)
        at = found.start() if found else 0
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    end = len(data) if end < 0 else end
    start = max(start, at - SHOWN // 2)
    return data[start:min(end, start + SHOWN)].rstrip(b"\r")


def _both(data: bytes, first: str, second: str, at: int | None = None,
          ambiguity: bool = True) -> str:
    """Where two encodings read a line differently, both readings."""
    if at is None:
        for found in re.finditer(rb"[^\n]*[\x80-\xff][^\n]*", data):
            chunk = found.group()
            if chunk.decode(first, errors="replace") != chunk.decode(second, errors="replace"):
                at = found.start() + re.search(rb"[\x80-\xff]", chunk).start()
                break
    line = _line(data, at)
    number = data.count(b"\n", 0, at or 0) + 1
    one = line.decode(first, errors="replace")
    two = line.decode(second, errors="replace")
    lead = "the bytes can be read two ways and nothing decides: " if ambiguity else ""
    return f"{lead}line {number} reads {one!r} in {first} or {two!r} in {second}"
