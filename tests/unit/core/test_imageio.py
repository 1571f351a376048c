import numpy as np
import pytest
from PIL import Image

from imgdiff_rt.errors import ImageReadError, ImageTooLargeError, InputError
from imgdiff_rt.imageio import read_image

from helpers import textured


@pytest.mark.parametrize("suffix,kw", [(".png", {}), (".bmp", {}), (".tiff", {}), (".webp", {"lossless": True}),
                                       (".jpg", {"quality": 95})])
def test_formats_decode_to_rgb8(tmp_path, suffix, kw):
    arr = textured(64, 80)
    p = tmp_path / f"img{suffix}"
    Image.fromarray(arr).save(p, **kw)
    out = read_image(p)
    assert out.shape == (64, 80, 3) and out.dtype == np.uint8
    tol = 12 if suffix == ".jpg" else 0
    assert np.abs(out.astype(int) - arr.astype(int)).mean() <= tol


def test_exif_orientation_is_applied(tmp_path):
    arr = textured(40, 90)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (90, 40, 3)


def test_grayscale_rgba_and_16bit_are_converted(tmp_path):
    gray = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (64, 64, 3) and (g[..., 0] == gray).all()

    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :16, 3] = 255  # left half opaque red, right half transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = read_image(tmp_path / "a.png")
    assert tuple(a[5, 5]) == (200, 0, 0) and tuple(a[5, 25]) == (255, 255, 255)

    sixteen = (np.linspace(0, 65535, 48 * 48).reshape(48, 48)).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    s = read_image(tmp_path / "s.png")
    assert s.dtype == np.uint8 and s[0, 0, 0] == 0 and s[-1, -1, 0] == 255


def test_arrays_and_pil_images_are_accepted():
    arr = textured(32, 32)
    assert (read_image(arr) == arr).all()
    assert (read_image(Image.fromarray(arr)) == arr).all()
    assert read_image(arr.astype(np.float32) / 255.0).shape == (32, 32, 3)
    with pytest.raises(ImageReadError, match="shape"):
        read_image(np.zeros((4, 4, 2, 2)))


def test_pixel_cap_is_checked_before_decoding(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (10_000, 9_000)).save(p)  # 90 MP of zeros: a few KB on disk
    with pytest.raises(ImageTooLargeError, match="90.0 MP, over the 30 MP cap"):
        read_image(p)
    small = tmp_path / "small.png"
    Image.fromarray(textured(64, 64)).save(small)
    with pytest.raises(ImageTooLargeError):
        read_image(small, max_pixels=1000)


def test_errors_are_input_errors_naming_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)
