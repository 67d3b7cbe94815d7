"""audiograd.audio.png: encoded images decode (with zlib, by hand) to the same pixels."""
import struct
import zlib

import numpy as np
import pytest

from audiograd.audio.png import encode_png, write_png


def decode_png(data: bytes):
    """(width, height, colour type, pixels (h, w, channels)) of a PNG with filter-0 rows; checks CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    channels = {0: 1, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * channels)
    assert not rows[:, 0].any()                     # every row uses filter type 0
    return w, h, ctype, rows[:, 1:].reshape(h, w, channels)


@pytest.mark.parametrize("shape, ctype", [((7, 5), 0), ((7, 5, 1), 0), ((3, 9, 3), 2), ((4, 4, 4), 6)])
def test_round_trip(shape, ctype):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    w, h, got_type, pixels = decode_png(encode_png(img))
    assert (h, w, got_type) == (shape[0], shape[1], ctype)
    np.testing.assert_array_equal(pixels, img.reshape(shape[0], shape[1], -1))


def test_write_png(tmp_path):
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 1] = (255, 128, 1)
    path = tmp_path / "a.png"
    write_png(path, img)
    np.testing.assert_array_equal(decode_png(path.read_bytes())[3], img)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]    # no temporary file left


@pytest.mark.parametrize("img, error", [(np.zeros((2, 2), np.float32), TypeError),
                                        (np.zeros((2, 2, 2), np.uint8), ValueError),
                                        (np.zeros((0, 3), np.uint8), ValueError),
                                        (np.zeros(5, np.uint8), ValueError)])
def test_rejects_bad_images(img, error):
    with pytest.raises(error, match="encode_png"):
        encode_png(img)
