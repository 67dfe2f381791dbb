"""Images: 16-bit/32-bit/float modes scaled from their full range, decompression bombs and truncated files refused
naming the file, unreadable files skippable with an explicit option that reports them."""

import io

import numpy as np
import PIL.Image
import pytest

from csdn.data.images import load_image, to_pil_image


def _grey(image):
    rgb = np.asarray(image)
    assert image.mode == "RGB" and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0]


def test_a_16_bit_png_is_scaled_from_its_full_range(tmp_path):
    values = np.array([[0, 1, 128, 129, 1000, 65406], [32767, 32768, 60000, 65534, 65535, 65407]], dtype=np.uint16)
    PIL.Image.fromarray(values).save(tmp_path / "thermal.png")
    with PIL.Image.open(tmp_path / "thermal.png") as raw:
        assert raw.mode.startswith("I;16")  # a real 16-bit PNG
    # round(v * 255 / 65535) by hand: 1 -> 0.0039, 128 -> 0.498, 129 -> 0.502, 1000 -> 3.891,
    # 32767 -> 127.498, 32768 -> 127.502, 60000 -> 233.46, 65534 -> 254.996; at the top of the range a constant off
    # by one shows: 65406 -> 254.498 (254.502 over 65534), 65407 -> 254.502 (254.498 over 65536)
    expected = np.array([[0, 0, 0, 1, 4, 254], [127, 128, 233, 255, 255, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(_grey(load_image(tmp_path / "thermal.png")), expected)


def test_a_typical_thermal_frame_is_not_white(tmp_path):
    # a 14-bit sensor in a 16-bit PNG: values around 7000..9000 (PIL's own conversion clips them all to 255)
    frame = np.random.default_rng(0).integers(7000, 9000, (24, 16), dtype=np.uint16)
    PIL.Image.fromarray(frame).save(tmp_path / "frame.png")
    grey = _grey(load_image(tmp_path / "frame.png"))
    np.testing.assert_array_equal(grey, np.floor(frame.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8))
    assert grey.max() <= 36 and (grey < 255).all()


def test_32_bit_and_float_images(tmp_path):
    ints = PIL.Image.fromarray(np.array([[0, 65535, 13107]], dtype=np.int32))  # mode "I", within 16 bits
    assert ints.mode == "I"
    np.testing.assert_array_equal(_grey(to_pil_image(ints)), [[0, 255, 51]])  # 13107 * 255 / 65535 = 51
    top = PIL.Image.fromarray(np.array([[30000, 65535, 40000]], dtype=np.int32))  # 65535 is still 16-bit scaling
    np.testing.assert_array_equal(_grey(to_pil_image(top)), [[117, 255, 156]])  # 116.73, 255, 155.64
    above = PIL.Image.fromarray(np.array([[30000, 65536, 40000]], dtype=np.int32))  # 65536: min-max
    np.testing.assert_array_equal(_grey(to_pil_image(above)), [[0, 255, 72]])  # 10000 * 255 / 35536 = 71.76
    wide = PIL.Image.fromarray(np.array([[-100, 0, 100, 300]], dtype=np.int32))  # outside 16 bits: min-max
    np.testing.assert_array_equal(_grey(to_pil_image(wide)), [[0, 64, 128, 255]])  # (v + 100) * 255 / 400
    unit = PIL.Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.2]], dtype=np.float32))
    assert unit.mode == "F"
    np.testing.assert_array_equal(_grey(to_pil_image(unit)), [[0, 128, 255, 51]])  # v * 255 (0.5 -> 127.5 -> 128)
    kelvin = PIL.Image.fromarray(np.array([[290.0, 300.0, 310.0]], dtype=np.float32))  # not in [0, 1]: min-max
    np.testing.assert_array_equal(_grey(to_pil_image(kelvin)), [[0, 128, 255]])
    unit.save(tmp_path / "f.tiff")
    np.testing.assert_array_equal(_grey(load_image(tmp_path / "f.tiff")), [[0, 128, 255, 51]])


def test_8_bit_images_are_unchanged(tmp_path):
    values = np.array([[0, 7, 200, 255]], dtype=np.uint8)
    PIL.Image.fromarray(values).save(tmp_path / "g.png")
    np.testing.assert_array_equal(_grey(load_image(tmp_path / "g.png")), values)


def test_a_decompression_bomb_is_one_error_naming_the_file(tmp_path, monkeypatch):
    PIL.Image.new("RGB", (40, 30)).save(tmp_path / "big.png")  # 1200 pixels
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 700)  # over the limit, under twice it: PIL only warns
    with pytest.raises(ValueError, match=r"big.png is larger than PIL's limit of 700 pixels"):
        load_image(tmp_path / "big.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match=r"big.png is larger than PIL's limit of 100 pixels"):
        load_image(tmp_path / "big.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1200)
    assert load_image(tmp_path / "big.png").size == (40, 30)


def test_truncated_and_undecodable_files_are_one_error_naming_the_file(tmp_path):
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("cut.jpg", "text.jpg"):
        with pytest.raises(ValueError, match=rf"Cannot decode image .*{name} .*damaged, truncated or not an image"):
            load_image(tmp_path / name)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_wide_images_are_converted_with_a_bounded_number_of_copies(mode):
    """A 16-bit PNG just under PIL's pixel limit cost 3.5 GB (several float64 copies); now a few bytes per pixel."""
    import tracemalloc

    from csdn.data.images import to_8bit

    pixels = np.random.default_rng(0).integers(0, 65535, (1000, 1000), dtype=np.uint16)
    image = {"I;16": lambda: PIL.Image.fromarray(pixels), "I": lambda: PIL.Image.fromarray(pixels.astype(np.int32)),
             "F": lambda: PIL.Image.fromarray(pixels.astype(np.float32) * 3.0)}[mode]()  # fmt: skip
    assert image.mode == mode
    tracemalloc.start()
    try:
        out = to_8bit(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.mode == "L" and out.size == (1000, 1000)
    # PIL hands numpy a copy (transiently two) and one working copy follows; the old float64 chain took 32+
    assert peak < 16 * pixels.size, f"{peak / pixels.size:.1f} bytes per pixel"
