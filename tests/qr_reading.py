"""Reading QR labels back, for the tests: the PNG through zxing-cpp (a decoder that shares
nothing with segno, which made the code), the SVG's path back into the module matrix."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import segno
import zxingcpp
from PIL import Image

SVG = "{http://www.w3.org/2000/svg}"
_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z")


def png_texts(data: bytes) -> list[str]:
    """What every QR code found in a PNG says."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))]


def segno_matrix(url: str) -> list[list[bool]]:
    """The modules segno makes for `url` with the labels' settings (error correction Q)."""
    code = segno.make(url, error="q", micro=False, boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix]


def svg_matrix(text: str, quiet: int = 4) -> list[list[bool]]:
    """The modules an SVG label draws (its path of unit-high runs), without the quiet zone."""
    root = ET.fromstring(text)
    (path,) = root.iter(f"{SVG}path")
    d = path.attrib["d"]
    runs = [tuple(int(g) for g in m.groups()) for m in _RUN.finditer(d)]
    assert "".join(m.group(0) for m in _RUN.finditer(d)) == d, "the path is runs only"
    size = int(float(root.attrib["viewBox"].split()[2])) - 2 * quiet
    matrix = [[False] * size for _ in range(size)]
    for x, y, w, back in runs:
        assert w == back
        for dx in range(w):
            matrix[y - quiet][x - quiet + dx] = True
    return matrix


def svg_text(text: str) -> str:
    root = ET.fromstring(text)
    (element,) = root.iter(f"{SVG}text")
    return element.text or ""
