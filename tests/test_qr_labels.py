"""The QR labels of `csms locations qr` (no server, no database): the payment page's
address, the file names, and what the PNG and SVG carry when read back by an independent
decoder."""

from __future__ import annotations

import io
import string

import pytest
from PIL import Image

from csms.cli.qr_labels import (
    FONT,
    GLYPH_H,
    GLYPH_W,
    file_stem,
    make_label,
    render_png,
    render_svg,
)
from csms.core.ids import charger_id_problem
from csms.core.locations import evse_uid
from csms.core.pay_links import pay_url
from tests.qr_reading import png_texts, segno_matrix, svg_matrix, svg_text


def test_pay_url_is_one_path_segment_per_uid() -> None:
    assert pay_url("https://charge.example.com/", "CP1*1") == (
        "https://charge.example.com/pay/CP1*1"
    )
    assert pay_url("http://127.0.0.1:9100", "CP|B@x:1+2=3*2") == (
        "http://127.0.0.1:9100/pay/CP%7CB%40x%3A1%2B2%3D3*2"
    )
    with pytest.raises(ValueError, match="http"):
        pay_url("charge.example.com", "CP1*1")


def test_file_names_are_safe_everywhere() -> None:
    assert file_stem("CP1*1") == "CP1_1"
    assert file_stem("a-b_c.d|e@f:g+h=i*12") == "a-b_c.d_e_f_g_h_i_12"
    uid = evse_uid("X" * 48, 3)  # too long for `{id}*{n}`: a digest
    assert file_stem(uid) == uid


def test_the_font_covers_every_evse_id() -> None:
    # eMI3 EVSE ids (staff's and the default ones) are upper-case letters, digits and `*`.
    for char in string.ascii_uppercase + string.digits + "*":
        glyph = FONT[char]
        assert len(glyph) == GLYPH_H and all(len(row) == GLYPH_W for row in glyph), char
        assert set("".join(glyph)) <= {"#", "."}
    assert charger_id_problem("CP-1_a.b:c") is None  # the other ones a uid may print
    with pytest.raises(ValueError, match="cannot print"):
        render_png(make_label("https://x.example/pay/A*1", "NL*CSM*E1#"))


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("https://charge.example.com/pay/CP1*1", "NL*CSM*ECP1*1"),
        # A long address (a bigger code) and the longest EVSE id (the font shrinks).
        (
            "https://payments.charging-operator.example.com/pay/" + "C" * 34 + "*2",
            "NL*CSM*E" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
        ),
    ],
)
def test_png_label_reads_back_as_the_url(url: str, text: str) -> None:
    data = render_png(make_label(url, text))
    assert png_texts(data) == [url]
    image = Image.open(io.BytesIO(data))
    assert image.mode == "1"
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.1)
    # Below the code (and its quiet zone) something is printed: the id.
    code = (len(segno_matrix(url)) + 8) * 10
    width, height = image.size
    assert height > code and width >= code
    below = image.crop((0, code, width, height)).convert("L")
    assert below.getextrema()[0] == 0


def test_svg_label_draws_the_same_modules_as_segno() -> None:
    url = "https://charge.example.com/pay/CP%3AB*1"
    svg = render_svg(make_label(url, "NL*CSM*ECPB*1"))
    assert svg_matrix(svg) == segno_matrix(url)
    assert svg_text(svg) == "NL*CSM*ECPB*1"
    assert 'width="41mm"' in svg  # one millimetre per module, quiet zone included
