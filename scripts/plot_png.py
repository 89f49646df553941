"""Minimal PNG scatter/line plots with the Python standard library only
(zlib + struct): log-log axes, tick labels, a legend, one colour per
series. Used by scripts/bench-report; no third-party packages needed."""

import math
import struct
import zlib

# 5x7 bitmap font: each glyph is 7 rows of 5 bits (MSB = left column).
FONT = {
    "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14],
    "2": [14, 17, 1, 2, 4, 8, 31], "3": [31, 2, 4, 2, 1, 17, 14],
    "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8],
    "8": [14, 17, 17, 14, 17, 17, 14], "9": [14, 17, 17, 15, 1, 2, 12],
    "A": [14, 17, 17, 31, 17, 17, 17], "B": [30, 17, 17, 30, 17, 17, 30],
    "C": [14, 17, 16, 16, 16, 17, 14], "D": [28, 18, 17, 17, 17, 18, 28],
    "E": [31, 16, 16, 30, 16, 16, 31], "F": [31, 16, 16, 30, 16, 16, 16],
    "G": [14, 17, 16, 23, 17, 17, 15], "H": [17, 17, 17, 31, 17, 17, 17],
    "I": [14, 4, 4, 4, 4, 4, 14], "J": [7, 2, 2, 2, 2, 18, 12],
    "K": [17, 18, 20, 24, 20, 18, 17], "L": [16, 16, 16, 16, 16, 16, 31],
    "M": [17, 27, 21, 21, 17, 17, 17], "N": [17, 17, 25, 21, 19, 17, 17],
    "O": [14, 17, 17, 17, 17, 17, 14], "P": [30, 17, 17, 30, 16, 16, 16],
    "Q": [14, 17, 17, 17, 21, 18, 13], "R": [30, 17, 17, 30, 20, 18, 17],
    "S": [15, 16, 16, 14, 1, 1, 30], "T": [31, 4, 4, 4, 4, 4, 4],
    "U": [17, 17, 17, 17, 17, 17, 14], "V": [17, 17, 17, 17, 17, 10, 4],
    "W": [17, 17, 17, 21, 21, 21, 10], "X": [17, 17, 10, 4, 10, 17, 17],
    "Y": [17, 17, 10, 4, 4, 4, 4], "Z": [31, 1, 2, 4, 8, 16, 31],
    " ": [0] * 7, ".": [0, 0, 0, 0, 0, 12, 12], "-": [0, 0, 0, 31, 0, 0, 0],
    "/": [1, 1, 2, 4, 8, 16, 16], ":": [0, 12, 12, 0, 12, 12, 0],
    "=": [0, 0, 31, 0, 31, 0, 0], "(": [2, 4, 8, 8, 8, 4, 2],
    ")": [8, 4, 2, 2, 2, 4, 8], "_": [0, 0, 0, 0, 0, 0, 31],
    "%": [24, 25, 2, 4, 8, 19, 3], ",": [0, 0, 0, 0, 12, 4, 8],
}

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14),
           (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207)]


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray([255] * (w * h * 3))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c, width=1):
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for ox in range(width):
                for oy in range(width):
                    self.set(x0 + ox - width // 2, y0 + oy - width // 2, c)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def box(self, x, y, r, c):
        for yy in range(int(y) - r, int(y) + r + 1):
            for xx in range(int(x) - r, int(x) + r + 1):
                self.set(xx, yy, c)

    def text(self, x, y, s, c=(0, 0, 0), scale=1):
        for ch in s.upper():
            rows = FONT.get(ch, FONT[" "])
            for ry, bits in enumerate(rows):
                for rx in range(5):
                    if bits & (1 << (4 - rx)):
                        for a in range(scale):
                            for b in range(scale):
                                self.set(x + rx * scale + a, y + ry * scale + b, c)
            x += 6 * scale

    def png(self):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(tag, data):
            return (struct.pack(">I", len(data)) + tag + data
                    + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

        return (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def human(v):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            s = f"{v / div:g}"
            return s + suffix
    return f"{v:g}"


def loglog_plot(path, series, title, xlabel, ylabel, w=900, h=560, hlines=()):
    """series: list of (name, [(x, y), ...], connect: bool). Positive values only.
    hlines: (y, label) pairs drawn as dashed horizontal lines (e.g. a limit)."""
    pts = [p for _, ps, _ in series for p in ps if p[0] > 0 and p[1] > 0]
    pts += [(pts[0][0], y) for y, _ in hlines if y > 0] if pts else []
    c = Canvas(w, h)
    left, right, top, bottom = 90, w - 230, 50, h - 60
    c.text(left, 18, title, scale=2)
    if not pts:
        c.text(left, h // 2, "NO MEASUREMENTS YET", scale=2)
        open(path, "wb").write(c.png())
        return
    lx = [math.log10(p[0]) for p in pts]
    ly = [math.log10(p[1]) for p in pts]
    x0, x1 = math.floor(min(lx)), math.ceil(max(lx))
    y0, y1 = math.floor(min(ly)), math.ceil(max(ly))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

    def tx(v):
        return left + (math.log10(v) - x0) / (x1 - x0) * (right - left)

    def ty(v):
        return bottom - (math.log10(v) - y0) / (y1 - y0) * (bottom - top)

    grey, black = (220, 220, 220), (0, 0, 0)
    for d in range(x0, x1 + 1):
        X = tx(10 ** d)
        c.line(X, top, X, bottom, grey)
        c.text(int(X) - 10, bottom + 8, human(10 ** d))
    for d in range(y0, y1 + 1):
        Y = ty(10 ** d)
        c.line(left, Y, right, Y, grey)
        c.text(left - 50, int(Y) - 3, human(10 ** d))
    c.line(left, bottom, right, bottom, black)
    c.line(left, top, left, bottom, black)
    c.text((left + right) // 2 - len(xlabel) * 3, bottom + 28, xlabel)
    c.text(8, top - 16, ylabel)
    for y, label in hlines:
        if y <= 0:
            continue
        Y = ty(y)
        for X in range(left, right, 12):
            c.line(X, Y, min(X + 6, right), Y, (120, 120, 120))
        c.text(right - len(label) * 6 - 4, int(Y) - 11, label, (90, 90, 90))
    for i, (name, ps, connect) in enumerate(series):
        col = COLOURS[i % len(COLOURS)]
        ps = [p for p in ps if p[0] > 0 and p[1] > 0]
        if connect:
            for a, b in zip(ps, ps[1:]):
                c.line(tx(a[0]), ty(a[1]), tx(b[0]), ty(b[1]), col, width=2)
        for p in ps:
            c.box(tx(p[0]), ty(p[1]), 3, col)
        ly_ = top + 10 + i * 16
        c.box(right + 20, ly_ + 3, 4, col)
        c.text(right + 30, ly_, name)
    with open(path, "wb") as f:
        f.write(c.png())
