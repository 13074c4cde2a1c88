"""Label Studio's brush RLE: the bit-packed run-length format of thi.ng/rle-pack.

A brush region is an RGBA image flattened to H*W*4 bytes (the mask in every channel: 255
where painted, 0 elsewhere), encoded as a bit stream, most significant bit first:

    header   32 bits  number of values (H*W*4)
              5 bits  word size - 1 (8-bit values: 7)
            4x4 bits  the four run-length field widths - 1 (3, 4, 8, 16 bits: 2, 3, 7, 15)
    chunks    1 bit   1 = a run of one repeated value, 0 = literal values
              2 bits  which run-length field width follows
              w bits  count - 1
              8 bits  the value (a run), or `count` values (literals)

and padded with zero bits to whole bytes; the wire form is the list of those bytes.
Every pixel's four channels are equal, so every run is at least 4 long and this encoder
only writes repeat chunks. Vectorised with numpy: no per-pixel Python loop.
"""

from __future__ import annotations

import numpy as np

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)
CHANNELS = 4
_MAX_RUN = 1 << RLE_SIZES[-1]  # the longest run one chunk can hold
_BLOCK = 1 << 16  # chunks turned into bits at a time (bounds the temporary arrays)


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The low `widths[i]` bits of each `values[i]`, MSB first, concatenated (0/1 uint8)."""
    top = int(widths.max())
    shifts = np.arange(top - 1, -1, -1, dtype=np.uint64)
    bits = ((values.astype(np.uint64)[:, None] >> shifts) & 1).astype(np.uint8)
    keep = np.arange(top)[None, :] >= (top - widths)[:, None]
    return bits[keep]  # row-major: field after field, each MSB first


def _runs(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths and values of a 1-D array."""
    n = pixels.size
    starts = np.concatenate(([0], np.flatnonzero(pixels[1:] != pixels[:-1]) + 1))
    lengths = np.diff(np.append(starts, n))
    return lengths.astype(np.int64), pixels[starts]


def encode_mask(binary: np.ndarray) -> list[int]:
    """Label Studio brush RLE of a 2-D mask (true/nonzero = painted) as a list of byte values."""
    pixels = np.where(np.asarray(binary).ravel() != 0, 255, 0).astype(np.uint8)
    lengths, values = _runs(pixels)
    lengths *= CHANNELS  # the RGBA stream repeats each pixel's value four times

    # Split runs longer than one chunk can hold.
    pieces = -(-lengths // _MAX_RUN)
    owner = np.repeat(np.arange(lengths.size), pieces)
    first = np.cumsum(pieces) - pieces
    nth = np.arange(owner.size) - first[owner]
    last = nth == pieces[owner] - 1
    counts = np.where(last, lengths[owner] - (pieces[owner] - 1) * _MAX_RUN, _MAX_RUN)
    chunk_values = values[owner]

    header_values = np.array(
        [pixels.size * CHANNELS, WORD_SIZE - 1, *(s - 1 for s in RLE_SIZES)], dtype=np.uint64
    )
    header_widths = np.array([32, 5, 4, 4, 4, 4], dtype=np.int64)
    parts = [_bits(header_values, header_widths)]

    size_widths = np.array(RLE_SIZES, dtype=np.int64)
    for lo in range(0, counts.size, _BLOCK):
        c1 = counts[lo : lo + _BLOCK] - 1
        size_idx = (c1 >= 1 << RLE_SIZES[0]).astype(np.int64)
        size_idx += c1 >= 1 << RLE_SIZES[1]
        size_idx += c1 >= 1 << RLE_SIZES[2]
        n = c1.size
        fields = np.stack(
            [np.ones(n, np.int64), size_idx, c1, chunk_values[lo : lo + _BLOCK].astype(np.int64)],
            axis=1,
        ).ravel()
        widths = np.stack(
            [np.ones(n, np.int64), np.full(n, 2), size_widths[size_idx], np.full(n, WORD_SIZE)],
            axis=1,
        ).ravel()
        parts.append(_bits(fields, widths))
    return np.packbits(np.concatenate(parts)).tolist()


class RleError(ValueError):
    """Bytes that are not a brush RLE stream (truncated, or sizes that do not add up)."""


def decode_rle(data: list[int] | bytes, max_values: int) -> np.ndarray:
    """The flat byte values of a brush RLE stream (any encoder's: runs and literals).

    `max_values` bounds the header's count before anything is allocated (a stream of a
    few bytes may claim gigabytes). One numpy read per chunk: literal chunks, which Label
    Studio's editor writes where channels differ, are read in one go.
    """
    try:
        bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    except (ValueError, TypeError) as e:
        raise RleError(f"not a list of byte values: {e}") from e
    pos = 0
    weights = (1 << np.arange(31, -1, -1, dtype=np.uint64)).astype(np.uint64)

    def read(n: int, times: int = 1) -> np.ndarray:
        nonlocal pos
        end = pos + n * times
        if end > bits.size:
            raise RleError("the stream ends inside a chunk")
        fields = bits[pos:end].reshape(times, n).astype(np.uint64) @ weights[32 - n :]
        pos = end
        return fields

    total = int(read(32)[0])
    word = int(read(5)[0]) + 1
    sizes = [int(v) + 1 for v in read(4, 4)]
    if total > max_values or word > 32:
        raise RleError(f"the stream claims {total} values of {word} bits")
    out = np.empty(total, dtype=np.uint8)
    i = 0
    while i < total:
        repeat = int(read(1)[0])
        count = int(read(sizes[int(read(2)[0])])[0]) + 1
        if i + count > total:
            raise RleError("a chunk runs past the stream's count")
        out[i : i + count] = read(word)[0] if repeat else read(word, count)
        i += count
    return out
