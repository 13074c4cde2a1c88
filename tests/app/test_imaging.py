"""Image and mask decoding with limits, class-index PNGs, COCO RLE, overlays, colours."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from app.errors import ImageTooLarge, InvalidImage, InvalidMask, MaskSizeMismatch, UnknownClassIndex
from app.imaging import (
    decode_mask,
    decode_png_array,
    decode_rgb,
    default_color,
    encode_png,
    hex_to_rgb,
    mask_to_rle,
    overlay_png,
    probe_image,
)
from tests.fixtures.build import image_bytes, mask_bytes, png_declaring_size

BIG = 10_000_000
# pycocotools' decode trips a NumPy 2 deprecation inside its own code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class TestProbe:
    @pytest.mark.parametrize(
        "fmt,ctype",
        [
            ("PNG", "image/png"),
            ("JPEG", "image/jpeg"),
            ("BMP", "image/bmp"),
            ("WEBP", "image/webp"),
            ("TIFF", "image/tiff"),
        ],
    )
    def test_accepted_formats(self, fmt, ctype):
        info = probe_image(image_bytes(30, 20, fmt=fmt), BIG)
        assert (info.width, info.height, info.format, info.content_type) == (30, 20, fmt, ctype)

    def test_gif_is_refused(self):
        buf = io.BytesIO()
        PILImage.new("L", (4, 4)).save(buf, format="GIF")
        with pytest.raises(InvalidImage) as e:
            probe_image(buf.getvalue(), BIG)
        assert "GIF" in e.value.message

    @pytest.mark.parametrize("data", [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
    def test_not_an_image(self, data):
        with pytest.raises(InvalidImage):
            probe_image(data, BIG)

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
    def test_truncated(self, fmt):
        whole = image_bytes(64, 64, fmt=fmt)
        with pytest.raises(InvalidImage) as e:
            probe_image(whole[: len(whole) // 2], BIG)
        assert "decoded" in e.value.message

    def test_corrupt_png_data(self):
        whole = bytearray(image_bytes(64, 64))
        idat = whole.index(b"IDAT")
        whole[idat + 20 : idat + 60] = b"\x00" * 40  # clobber compressed pixel data
        with pytest.raises(InvalidImage):
            probe_image(bytes(whole), BIG)

    def test_bomb_refused_before_decoding(self):
        bomb = png_declaring_size(200_000, 200_000)  # 4e10 pixels, ~100 bytes
        with pytest.raises(ImageTooLarge) as e:
            probe_image(bomb, 50_000_000)
        assert e.value.detail == {"width": 200_000, "height": 200_000, "max_pixels": 50_000_000}

    def test_limit_is_per_call(self):
        data = image_bytes(10, 10)
        assert probe_image(data, 100).width == 10
        with pytest.raises(ImageTooLarge):
            probe_image(data, 99)
        # the global Pillow limit is off, so a huge limit is honoured
        assert PILImage.MAX_IMAGE_PIXELS is None

    def test_decode_rgb(self):
        data = image_bytes(12, 8, mode="L")
        arr = decode_rgb(data, BIG)
        assert arr.shape == (8, 12, 3) and arr.dtype == np.uint8
        grey = np.array(PILImage.open(io.BytesIO(data)))
        assert np.array_equal(arr[..., 0], grey) and np.array_equal(arr[..., 2], grey)
        with pytest.raises(ImageTooLarge):
            decode_rgb(data, 95)


class TestDecodeMask:
    def _arr(self):
        a = np.zeros((6, 8), np.uint8)
        a[1:3, 2:5] = 2
        a[4, :] = 255
        return a

    def test_round_trip(self):
        a = self._arr()
        out = decode_mask(mask_bytes(a), width=8, height=6, num_classes=2, max_pixels=BIG)
        assert out.dtype == np.uint8 and np.array_equal(out, a)

    def test_palette_values_are_indices(self):
        a = self._arr()
        img = PILImage.fromarray(a, mode="L").convert("P")
        img.putpalette([255 - (i // 3) for i in range(768)])
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out = decode_mask(buf.getvalue(), width=8, height=6, num_classes=2, max_pixels=BIG)
        assert np.array_equal(out, a)

    def test_size_mismatch(self):
        with pytest.raises(MaskSizeMismatch):
            decode_mask(mask_bytes(self._arr()), width=6, height=8, num_classes=2, max_pixels=BIG)

    def test_unknown_index(self):
        with pytest.raises(UnknownClassIndex) as e:
            decode_mask(mask_bytes(self._arr()), width=8, height=6, num_classes=1, max_pixels=BIG)
        assert e.value.detail["unknown"] == [2]

    @pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "I;16", "1"])
    def test_wrong_modes(self, mode):
        img = PILImage.new(mode, (8, 6))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        assert PILImage.open(io.BytesIO(buf.getvalue())).mode not in ("L", "P")
        with pytest.raises(InvalidMask):
            decode_mask(buf.getvalue(), width=8, height=6, num_classes=2, max_pixels=BIG)

    def test_bad_bytes_are_invalid_mask_not_invalid_image(self):
        with pytest.raises(InvalidMask):
            decode_mask(b"nope", width=8, height=6, num_classes=2, max_pixels=BIG)

    def test_bomb(self):
        with pytest.raises(ImageTooLarge):
            decode_mask(
                png_declaring_size(90_000, 90_000), width=8, height=6, num_classes=2, max_pixels=BIG
            )


class TestPng:
    def test_encode_decode(self):
        a = np.random.default_rng(1).integers(0, 256, (17, 23), dtype=np.uint8)
        data = encode_png(a)
        img = PILImage.open(io.BytesIO(data))
        assert img.format == "PNG" and img.mode == "L"
        assert np.array_equal(decode_png_array(data), a)


class TestRle:
    def test_round_trip_every_class(self):
        rng = np.random.default_rng(2)
        m = rng.choice(np.array([0, 1, 3, 255], np.uint8), size=(13, 17))
        classes = mask_to_rle(m, {1: "cat", 2: "dog", 3: "bird"})
        assert [c["index"] for c in classes] == [0, 1, 3]
        assert [c["name"] for c in classes] == ["background", "cat", "bird"]
        for c in classes:
            assert isinstance(c["rle"]["counts"], str) and c["rle"]["size"] == [13, 17]
            rle = {"size": c["rle"]["size"], "counts": c["rle"]["counts"].encode()}
            assert np.array_equal(coco_mask.decode(rle), (m == c["index"]).astype(np.uint8))
            assert int(coco_mask.area(rle)) == int((m == c["index"]).sum())

    def test_only_ignore(self):
        assert mask_to_rle(np.full((3, 3), 255, np.uint8), {}) == []

    def test_unnamed_index(self):
        (c,) = mask_to_rle(np.full((2, 2), 7, np.uint8), {})
        assert c["index"] == 7 and c["name"] == "7"


class TestOverlay:
    def test_blend_and_untouched_pixels(self):
        rgb = np.full((4, 5, 3), 100, np.uint8)
        m = np.zeros((4, 5), np.uint8)
        m[0, :] = 1
        m[1, :] = 2
        m[2, :] = 255
        out = np.array(PILImage.open(io.BytesIO(overlay_png(rgb, m, {1: "#ff0000", 2: "#0000ff"}))))
        assert out.shape == (4, 5, 3)
        assert (out[0] == [178, 50, 50]).all()  # half way to red
        assert (out[1] == [50, 50, 178]).all()
        assert (out[2:] == 100).all()  # ignore and background left as they are

    def test_alpha(self):
        rgb = np.zeros((1, 1, 3), np.uint8)
        out = overlay_png(rgb, np.ones((1, 1), np.uint8), {1: "#ffffff"}, alpha=1.0)
        assert np.array(PILImage.open(io.BytesIO(out)))[0, 0].tolist() == [255, 255, 255]


class TestColours:
    def test_distinct_for_every_index(self):
        colours = [default_color(i) for i in range(256)]
        assert len(set(colours)) == 256
        assert default_color(0) == "#000000"
        assert default_color(1) == "#800000" and default_color(2) == "#008000"  # PASCAL VOC

    def test_hex_round_trip(self):
        for i in (1, 17, 254):
            c = default_color(i)
            r, g, b = hex_to_rgb(c)
            assert f"#{r:02x}{g:02x}{b:02x}" == c
