"""The QR labels of `csms locations qr`: one sticker per EVSE, its payment page's address
as a QR code (segno) with the EVSE id printed under it, as PNG and SVG.

Rendering only (no database, no configuration). The PNG is written here from the QR matrix
and a small bitmap font, so that labels need no imaging library; the SVG draws the same
matrix as a path and the id as text.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import segno

__all__ = ["FONT", "Label", "file_stem", "make_label", "render_png", "render_svg"]

# Quiet zone around the code, in modules (ISO/IEC 18004 asks for 4): the id is printed
# below it, never inside it, so that scanners find the code's edge.
QUIET = 4
# Error correction Q (25 % of the code may be lost): stickers outdoors get scratched and
# dirty, and the addresses are short enough to stay a small code.
ERROR = "q"
# PNG: pixels per module. 10 px at 300 dpi is 0.85 mm a module: a 4-version code (the
# usual address) is 35 mm wide.
PNG_SCALE = 10
PNG_DPI = 300
# SVG: millimetres per module on paper.
SVG_MODULE_MM = 1.0

# 5x7 glyphs of the characters an EVSE id may hold (eMI3: A-Z, 0-9 and `*`), plus a few
# of the charger id alphabet. One string per row, `#` is ink.
FONT: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    "*": (".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "_": (".....", ".....", ".....", ".....", ".....", ".....", "#####"),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    " ": (".....", ".....", ".....", ".....", ".....", ".....", "....."),
}
GLYPH_W, GLYPH_H = 5, 7
ADVANCE = GLYPH_W + 1  # one blank column between characters


@dataclass(frozen=True, slots=True)
class Label:
    """What one sticker carries: the address (as a QR matrix) and the id printed under it."""

    url: str
    text: str
    # The code's modules, without the quiet zone; True is dark.
    matrix: tuple[tuple[bool, ...], ...]


def make_label(url: str, text: str) -> Label:
    code = segno.make(url, error=ERROR, micro=False, boost_error=False)
    return Label(url, text, tuple(tuple(bool(m) for m in row) for row in code.matrix))


# A file name of letters, digits, `.`, `-` and `_` only: safe on every file system and in
# a shell without quoting.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(evse_uid: str) -> str:
    """The file name (without extension) of an EVSE's label: its uid with every character
    a file system or a shell may mind (`*`, `|`, `:`, `+`, `@`, `=`) as `_`: `CP1*1` ->
    `CP1_1`. Two uids may meet in one name; the caller checks."""
    return _UNSAFE.sub("_", evse_uid)


# --- PNG -----------------------------------------------------------------------------------


def _text_bitmap(text: str) -> list[list[bool]]:
    """The text in FONT, one row of pixels per glyph row (unknown characters are refused:
    an EVSE id holds only A-Z, 0-9 and `*`)."""
    missing = sorted({c for c in text.upper() if c not in FONT})
    if missing:
        raise ValueError(f"cannot print {''.join(missing)!r} on a label")
    rows: list[list[bool]] = [[] for _ in range(GLYPH_H)]
    for n, char in enumerate(text.upper()):
        glyph = FONT[char]
        for y in range(GLYPH_H):
            if n:
                rows[y].append(False)
            rows[y].extend(p == "#" for p in glyph[y])
    return rows


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _encode_png(pixels: Sequence[Sequence[bool]], dpi: int) -> bytes:
    """A 1-bit greyscale PNG; True pixels are black."""
    height, width = len(pixels), len(pixels[0])
    raw = bytearray()
    for row in pixels:
        raw.append(0)  # filter: none
        byte = 0
        for x, dark in enumerate(row):
            byte = (byte << 1) | (0 if dark else 1)
            if x % 8 == 7:
                raw.append(byte)
                byte = 0
        if width % 8:
            raw.append((byte << (8 - width % 8)) | ((1 << (8 - width % 8)) - 1))
    per_metre = round(dpi / 0.0254)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)),
            _png_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
            _png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)),
            _png_chunk(b"IEND", b""),
        )
    )


def render_png(label: Label, scale: int = PNG_SCALE, dpi: int = PNG_DPI) -> bytes:
    """The sticker as PNG: the code with its quiet zone, the id centred below it."""
    modules = len(label.matrix)
    code_px = (modules + 2 * QUIET) * scale
    text = _text_bitmap(label.text)
    text_w = len(text[0]) if text[0] else 0
    # A dot of the font is half a module (the id 3.5 modules high), smaller for a long id
    # that would not fit the code's width, but at least 2 px (the canvas widens instead).
    margin = 2 * scale
    fit = (code_px - 2 * margin) // max(1, text_w)
    dot = max(2, min(max(1, scale // 2), fit))
    width = max(code_px, text_w * dot + 2 * margin)
    height = code_px + GLYPH_H * dot + margin
    pixels = [[False] * width for _ in range(height)]
    left = (width - code_px) // 2 + QUIET * scale
    for y, row in enumerate(label.matrix):
        for x, dark in enumerate(row):
            if not dark:
                continue
            top, x0 = QUIET * scale + y * scale, left + x * scale
            for py in range(top, top + scale):
                pixels[py][x0 : x0 + scale] = [True] * scale
    text_left = (width - text_w * dot) // 2
    for gy, glyph_row in enumerate(text):
        for gx, ink in enumerate(glyph_row):
            if not ink:
                continue
            top, x0 = code_px + gy * dot, text_left + gx * dot
            for py in range(top, top + dot):
                pixels[py][x0 : x0 + dot] = [True] * dot
    return _encode_png(pixels, dpi)


# --- SVG -----------------------------------------------------------------------------------


def svg_path(matrix: Sequence[Sequence[bool]], offset: int) -> str:
    """The dark modules as one path of horizontal runs, in module units."""
    parts: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            parts.append(f"M{start + offset} {y + offset}h{x - start}v1h-{x - start}z")
    return "".join(parts)


# A monospace face's advance is about 0.6 of its size; the id is given its length
# (textLength) so that another face still fits.
_ADVANCE_EM = 0.6


def render_svg(label: Label, module_mm: float = SVG_MODULE_MM) -> str:
    """The sticker as SVG in module units (`module_mm` millimetres each on paper): the code
    as a path, the id as text centred below the quiet zone."""
    code = len(label.matrix) + 2 * QUIET
    chars = max(1, len(label.text))
    size = min(3.0, (code - 4) / (chars * _ADVANCE_EM))
    text_h = size * 1.5
    height = code + text_h
    length = chars * _ADVANCE_EM * size
    fmt = _num
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{fmt(code * module_mm)}mm" height="{fmt(height * module_mm)}mm" '
        f'viewBox="0 0 {code} {fmt(height)}">\n'
        f"<title>{escape(label.text)}: {escape(label.url)}</title>\n"
        f'<rect width="{code}" height="{fmt(height)}" fill="#fff"/>\n'
        f'<path fill="#000" d="{svg_path(label.matrix, QUIET)}"/>\n'
        f'<text x="{fmt(code / 2)}" y="{fmt(code + size)}" font-family="DejaVu Sans Mono, '
        f'Menlo, Consolas, monospace" font-size="{fmt(size)}" font-weight="bold" '
        f'text-anchor="middle" textLength="{fmt(length)}" lengthAdjust="spacingAndGlyphs">'
        f"{escape(label.text)}</text>\n"
        "</svg>\n"
    )


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")
