"""A PNG chart of a simulation: tasks running per service over virtual time.

No plotting library: a canvas of RGB bytes, lines drawn pixel by pixel, digits from a 3×5 font,
and the PNG file format written by hand (a signature, then IHDR, IDAT — the rows, each
prefixed by filter byte 0, deflated with zlib — and IEND chunks, each with its CRC-32;
see the PNG specification, section 5). Kills are red vertical lines; each service has a colour,
listed by `minirun sim --png` on its output. Deterministic: the same run gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0)]
COLOUR_NAMES = ["blue", "orange", "green", "purple", "brown", "pink", "grey", "olive", "cyan", "black"]
RED, AXIS, GRID = (214, 39, 40), (60, 60, 60), (225, 225, 225)
DIGITS = {  # 3×5 glyphs, one row per 3 bits, top row first
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111",
}


class Canvas:
    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        self.px = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(rgb)

    def hline(self, x0: int, x1: int, y: int, rgb, width: int = 1) -> None:
        for x in range(min(x0, x1), max(x0, x1) + 1):
            for d in range(width):
                self.dot(x, y + d, rgb)

    def vline(self, x: int, y0: int, y1: int, rgb, width: int = 1) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for d in range(width):
                self.dot(x + d, y, rgb)

    def number(self, text: str, x: int, y: int, scale: int = 2) -> None:
        """Digits with their top-left corner at (x, y)."""
        for ch in text:
            glyph = DIGITS[ch]
            for row in range(5):
                for col in range(3):
                    if glyph[row * 3 + col] == "1":
                        for dy in range(scale):
                            for dx in range(scale):
                                self.dot(x + col * scale + dx, y + row * scale + dy, AXIS)
            x += 4 * scale

    def png(self) -> bytes:
        rows = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)     # 8-bit RGB
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                + chunk(b"IEND", b""))


def _step(top: float) -> int:
    """A round tick interval giving about five ticks up to `top`."""
    raw = max(top / 5, 1)
    base = 10 ** (len(str(int(raw))) - 1)
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def draw(samples: list[tuple[float, dict[str, int]]], services: list[str], duration: float,
         marks: list[float], width: int = 800, height: int = 400) -> bytes:
    """samples: (time, {service: tasks running}) whenever a count changed."""
    c = Canvas(width, height)
    left, right, top, bottom = 50, width - 15, 15, height - 30
    ymax = max([1] + [n for _, counts in samples for n in counts.values()])
    ystep = _step(ymax)
    ymax = (ymax // ystep + 1) * ystep
    xstep = _step(duration)

    def x_of(t: float) -> int:
        return left + round((right - left) * t / duration) if duration else left

    def y_of(n: float) -> int:
        return bottom - round((bottom - top) * n / ymax)

    for n in range(0, ymax + 1, ystep):
        c.hline(left, right, y_of(n), GRID)
        label = str(n)
        c.number(label, left - 6 - 8 * len(label), y_of(n) - 5)
    t = 0
    while t <= duration:
        c.vline(x_of(t), top, bottom, GRID)
        label = str(int(t))
        c.number(label, x_of(t) - 4 * len(label), bottom + 8)
        t += xstep
    for m in marks:
        c.vline(x_of(m), top, bottom, RED, 2)
    for i, name in enumerate(services):
        rgb = PALETTE[i % len(PALETTE)]
        prev = None
        for t, counts in samples + [(duration, samples[-1][1] if samples else {})]:
            n = counts.get(name, 0)
            if prev is not None:
                c.hline(x_of(prev[0]), x_of(t), y_of(prev[1]), rgb, 2)
                c.vline(x_of(t), y_of(prev[1]), y_of(n), rgb, 2)
            prev = (t, n)
    c.hline(left, right, bottom, AXIS, 2)
    c.vline(left, top, bottom, AXIS, 2)
    return c.png()
