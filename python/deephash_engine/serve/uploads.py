"""Raw inputs uploaded as files (multipart), for adds and searches by upload.

An upload is either one ``.npy`` file (uint8 images or feature vectors, one per row) or one or more
image files (PNG, JPEG), each decoded with Pillow to a uint8 array of the size and channel count
the collection's encoder expects (grayscale or RGB; a colour image for a grayscale encoder is
converted to luma, alpha is dropped; sizes must match, nothing is resized). The kind of each file
is told by its first bytes, not by its name or content type.

Errors are :class:`StoreError` naming ``["file"]`` (a .npy upload) or ``["file", i]`` (the i-th
file), so the service answers 422 with that location under ``body``.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Optional, Sequence

import numpy as np

from .store import StoreError

NPY_MAGIC = b"\x93NUMPY"
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))
# 8-bit modes Pillow converts exactly to L or RGB; 16-bit and float images are refused, not rescaled
IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


def read_upload(files: Sequence[tuple[str, BinaryIO]], image_shape: Optional[tuple[int, int, int]]) -> np.ndarray:
    """The inputs of ``files`` (name, stream) in order: the rows of one .npy file, or one image per
    file stacked to (n, H, W) (one channel) or (n, H, W, C). ``image_shape`` is the encoder's
    (H, W, C), None when it does not take images."""
    if not files:
        raise StoreError(["file"], "no file uploaded")
    heads = [_head(stream) for _, stream in files]
    if heads[0].startswith(NPY_MAGIC):
        if len(files) > 1:
            raise StoreError(["file", 1], "a .npy upload is the only file of its request")
        return read_npy(files[0][1])
    if image_shape is None:
        raise StoreError(["file", 0], "this collection's encoder takes feature vectors, not images: upload a .npy file")
    images = [_read_image(i, name, stream, head, image_shape) for i, ((name, stream), head) in enumerate(zip(files, heads))]
    return np.stack(images)


def _head(stream: BinaryIO) -> bytes:
    stream.seek(0)
    head = stream.read(8)
    stream.seek(0)
    return head


def _read_image(i: int, name: str, stream: BinaryIO, head: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    where = ["file", i]
    kind = next((fmt for magic, fmt in IMAGE_MAGIC if head.startswith(magic)), None)
    if kind is None:
        raise StoreError(where, f"{name!r} is neither a .npy file nor a PNG or JPEG image")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - pillow is in the serve extra
        raise StoreError(where, "image uploads need Pillow on the server (pip install 'deephash-engine[serve]')") from None
    height, width, channels = shape
    try:
        with Image.open(stream, formats=[kind]) as image:
            # the header alone says the size: a wrong one is refused before any pixel is decoded
            if image.size != (width, height):
                raise StoreError(where, f"{name!r} is {image.size[0]}x{image.size[1]} pixels (width x height); "
                                        f"the encoder expects {width}x{height}")
            if image.mode not in IMAGE_MODES:
                raise StoreError(where, f"{name!r} has pixel mode {image.mode}; 8-bit grayscale or colour images are taken")
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except StoreError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise StoreError(where, f"{name!r} is not a decodable {kind} image: {exc}") from None
    return pixels


def read_npy(stream: BinaryIO) -> np.ndarray:
    """An uploaded .npy file, read without pickles; the header's shape must fit the bytes that
    follow it (a small file cannot make the server allocate what its header claims)."""
    fmt = np.lib.format
    try:
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version} is not read here (1.0 and 2.0 are)")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        if dtype.hasobject:
            raise ValueError("object arrays are refused")
        if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > size - stream.tell():
            raise ValueError(f"the header's shape {shape} needs more bytes than the file holds")
        stream.seek(0)
        array = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(["file"], f"not a readable .npy file: {exc}") from None
    if array.ndim < 2:
        raise StoreError(["file"], "expected an array of inputs, one per row")
    return array
