#!/usr/bin/env python3
"""Writes the decoder fixtures of Tests/ImagesTests/Fixtures and their goldens.

    python3 Tools/make_image_fixtures.py [--out Tests/ImagesTests/Fixtures]

PNG fixtures come from the small PNG writer below (pure Python + zlib), because Pillow
cannot write 16-bit colour, gray+alpha 16, low-bit palettes with tRNS or Adam7: the
golden of a PNG is the source array itself, converted by the decoder's documented
rules (16 -> 8 bits by round(v * 255 / 65535), low-bit gray scaled to 0..255, palette
expanded, tRNS -> alpha channel, gAMA ignored). Pillow then re-reads every PNG as a
check on the writer. JPEG fixtures come from Pillow (libjpeg-turbo), and their golden
is Pillow's own decode (islow IDCT, fancy upsampling: the same settings ours uses).

Broken files (empty, junk, truncated, bad CRC, bad zlib, bombs, CMYK, GIF) are derived
from the good ones. Deterministic: the same script gives the same bytes.

Outputs: <name>.png|.jpg|..., expected/<name>.raw (the decoded pixels, row-major,
channels interleaved) and fixtures.json listing every file with what a decoder must
return (ok + size + channels + golden + tolerance, or the error kind).
"""
import argparse
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

W, H = 37, 23          # odd sizes: catches stride and Adam7 edge bugs
JW, JH = 45, 29        # not a multiple of the 16-pixel MCU


# ----------------------------------------------------------------- PNG writer ----

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(values, depth):
    """Packs one row of samples (already flattened over channels) at `depth` bits."""
    if depth == 8:
        return bytes(values.astype(np.uint8))
    if depth == 16:
        return values.astype(">u2").tobytes()
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(values), per):
        byte = 0
        for j in range(per):
            v = int(values[i + j]) if i + j < len(values) else 0
            byte |= v << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def filter_rows(raw_rows, bpp):
    """Applies a different filter per row (None, Sub, Up, Average, Paeth in turn) so the
    decoder's unfiltering is exercised, not just filter type 0."""
    out = bytearray()
    prev = bytes(len(raw_rows[0])) if raw_rows else b""
    for y, row in enumerate(raw_rows):
        ftype = y % 5
        f = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                p = 0
            elif ftype == 1:
                p = a
            elif ftype == 2:
                p = b
            elif ftype == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            f[i] = (row[i] - p) & 0xFF
        out.append(ftype)
        out += f
        prev = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(samples, color_type, depth, palette=None, trns=None, interlace=False, extra=b""):
    """samples: (h, w, c) integer array of stored values (palette indices for type 3)."""
    h, w, c = samples.shape
    bpp = max(1, c * depth // 8)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)

    def rows_of(sub):
        return [pack_row(sub[y].reshape(-1), depth) for y in range(sub.shape[0])]

    data = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += filter_rows(rows_of(sub), bpp)
    else:
        data = filter_rows(rows_of(samples), bpp)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    comp = zlib.compress(data, 9)
    # Two IDAT chunks: decoders must join them.
    half = len(comp) // 2
    out += chunk(b"IDAT", comp[:half]) + chunk(b"IDAT", comp[half:])
    return out + chunk(b"IEND", b"")


# ------------------------------------------------------------------- sources ----

def source(h, w, c, maxval, seed):
    """A gradient plus noise, different per channel, covering 0..maxval."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for k in range(c):
        base = (x * (k + 1) / max(w - 1, 1) + y / max(h - 1, 1) * (2 - k * 0.5)) / 3.0
        v = (base % 1.0) * maxval + rng.normal(0, maxval * 0.08, size=(h, w))
        planes.append(np.clip(np.rint(v), 0, maxval))
    a = np.stack(planes, axis=-1).astype(np.int64)
    a[0, 0, :] = 0          # the extremes always appear
    a[-1, -1, :] = maxval
    return a


def to8(v16):
    """The decoder's 16 -> 8 rule: round(v * 255 / 65535) (no ties exist)."""
    return (v16 * 255 * 2 + 65535) // (2 * 65535)


# -------------------------------------------------------------------- main ----

def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "ImagesTests", "Fixtures"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    manifest = []

    def save(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    def ok(name, data, expected, tolerance=0, note=""):
        expected = np.asarray(expected).astype(np.uint8)
        if expected.ndim == 2:
            expected = expected[:, :, None]
        save(name, data)
        golden = "expected/" + os.path.splitext(name)[0] + ".raw"
        with open(os.path.join(out, golden), "wb") as f:
            f.write(expected.tobytes())
        h, w, c = expected.shape
        manifest.append(dict(file=name, expect="ok", width=w, height=h, channels=c,
                             golden=golden, tolerance=tolerance, note=note))

    def bad(name, data, expect, note="", **extra):
        save(name, data)
        manifest.append(dict(file=name, expect=expect, note=note, **extra))

    # --- PNG: every colour type and depth ------------------------------------
    pngs = {}
    g8 = source(H, W, 1, 255, 1)
    pngs["png_gray8.png"] = (write_png(g8, 0, 8), g8, "gray, 8 bit")
    g16 = source(H, W, 1, 65535, 2)
    pngs["png_gray16.png"] = (write_png(g16, 0, 16), to8(g16), "gray, 16 bit -> round(v*255/65535)")
    for depth in (1, 2, 4):
        m = (1 << depth) - 1
        g = source(H, W, 1, m, 10 + depth)
        pngs[f"png_gray{depth}.png"] = (write_png(g, 0, depth), g * (255 // m), f"gray, {depth} bit, scaled to 0..255")
    trns_gray = 77
    g8t = g8.copy()
    g8t[3:7, 5:11, 0] = trns_gray
    alpha = np.where(g8t[:, :, 0] == trns_gray, 0, 255)[:, :, None]
    pngs["png_gray8_trns.png"] = (write_png(g8t, 0, 8, trns=struct.pack(">H", trns_gray)),
                                  np.concatenate([g8t, alpha], axis=2), "gray + tRNS -> gray+alpha")
    ga8 = source(H, W, 2, 255, 3)
    pngs["png_graya8.png"] = (write_png(ga8, 4, 8), ga8, "gray+alpha, 8 bit")
    ga16 = source(H, W, 2, 65535, 4)
    pngs["png_graya16.png"] = (write_png(ga16, 4, 16), to8(ga16), "gray+alpha, 16 bit")
    rgb8 = source(H, W, 3, 255, 5)
    pngs["png_rgb8.png"] = (write_png(rgb8, 2, 8), rgb8, "RGB, 8 bit")
    rgb16 = source(H, W, 3, 65535, 6)
    pngs["png_rgb16.png"] = (write_png(rgb16, 2, 16), to8(rgb16), "RGB, 16 bit")
    rgba8 = source(H, W, 4, 255, 7)
    pngs["png_rgba8.png"] = (write_png(rgba8, 6, 8), rgba8, "RGBA, 8 bit: alpha kept, not composited")
    rgba16 = source(H, W, 4, 65535, 8)
    pngs["png_rgba16.png"] = (write_png(rgba16, 6, 16), to8(rgba16), "RGBA, 16 bit")
    rgb8t = rgb8.copy()
    rgb8t[10:14, 20:30] = (1, 2, 3)
    alpha = np.where((rgb8t == (1, 2, 3)).all(axis=2), 0, 255)[:, :, None]
    pngs["png_rgb8_trns.png"] = (write_png(rgb8t, 2, 8, trns=struct.pack(">HHH", 1, 2, 3)),
                                 np.concatenate([rgb8t, alpha], axis=2), "RGB + tRNS -> RGBA")

    rng = np.random.default_rng(9)
    pal = rng.integers(0, 256, size=(256, 3))
    idx8 = source(H, W, 1, 255, 12)[:, :, 0]
    pngs["png_palette8.png"] = (write_png(idx8[:, :, None], 3, 8, palette=pal), pal[idx8], "palette, 8 bit -> RGB")
    pal16 = rng.integers(0, 256, size=(16, 3))
    idx4 = source(H, W, 1, 15, 13)[:, :, 0]
    pal_alpha = np.array([0, 40, 128, 200, 255, 17], dtype=np.int64)   # shorter than the palette
    full_alpha = np.concatenate([pal_alpha, np.full(16 - len(pal_alpha), 255)])
    pngs["png_palette4_trns.png"] = (
        write_png(idx4[:, :, None], 3, 4, palette=pal16, trns=bytes(pal_alpha.astype(np.uint8))),
        np.concatenate([pal16[idx4], full_alpha[idx4][:, :, None]], axis=2),
        "palette, 4 bit, short tRNS -> RGBA (missing entries opaque)")
    pngs["png_rgb8_interlaced.png"] = (write_png(rgb8, 2, 8, interlace=True), rgb8, "RGB, 8 bit, Adam7")
    pngs["png_rgba16_interlaced.png"] = (write_png(rgba16, 6, 16, interlace=True), to8(rgba16), "RGBA, 16 bit, Adam7")
    pngs["png_palette8_interlaced.png"] = (write_png(idx8[:, :, None], 3, 8, palette=pal, interlace=True),
                                           pal[idx8], "palette, Adam7")
    gama = chunk(b"gAMA", struct.pack(">I", 100000))   # gamma 1.0: a gamma-applying decoder changes pixels
    pngs["png_rgb8_gamma1.png"] = (write_png(rgb8, 2, 8, extra=gama), rgb8, "gAMA 1.0 chunk ignored (as Pillow does)")
    pngs["png_rgb16_gamma1.png"] = (write_png(rgb16, 2, 16, extra=gama), to8(rgb16), "16 bit + gAMA 1.0: no gamma curve")

    for name, (data, expected, note) in pngs.items():
        ok(name, data, expected, note=note)
        check_with_pillow(os.path.join(out, name), np.asarray(expected))

    # The Pillow-written PNG: an encoder we did not write.
    buf = io.BytesIO()
    Image.fromarray(rgb8.astype(np.uint8), "RGB").save(buf, "PNG", optimize=True)
    ok("png_pillow_rgb.png", buf.getvalue(), rgb8, note="written by Pillow")

    # --- JPEG ------------------------------------------------------------------
    jrgb = source(JH, JW, 3, 255, 20).astype(np.uint8)
    jgray = source(JH, JW, 1, 255, 21)[:, :, 0].astype(np.uint8)
    jpegs = {
        "jpeg_baseline.jpg": (Image.fromarray(jrgb, "RGB"), dict(quality=90), "baseline, 4:2:0, q90"),
        "jpeg_baseline444.jpg": (Image.fromarray(jrgb, "RGB"), dict(quality=90, subsampling=0), "baseline, 4:4:4"),
        "jpeg_progressive.jpg": (Image.fromarray(jrgb, "RGB"), dict(quality=90, progressive=True), "progressive"),
        "jpeg_gray.jpg": (Image.fromarray(jgray, "L"), dict(quality=90), "gray"),
        "jpeg_gray_progressive.jpg": (Image.fromarray(jgray, "L"), dict(quality=90, progressive=True), "gray progressive"),
    }
    jpeg_bytes = {}
    for name, (im, opts, note) in jpegs.items():
        b = io.BytesIO()
        im.save(b, "JPEG", **opts)
        data = b.getvalue()
        jpeg_bytes[name] = data
        decoded = np.asarray(Image.open(io.BytesIO(data)))
        ok(name, data, decoded, tolerance=0, note=note + "; golden = Pillow's decode")

    # --- broken and refused files ---------------------------------------------
    png_rgb = pngs["png_rgb8.png"][0]
    bad("empty.png", b"", "truncated", "zero bytes")
    bad("junk.png", bytes(np.random.default_rng(30).integers(0, 256, 500).astype(np.uint8)), "notAnImage",
        "random bytes named .png")
    bad("text.jpg", b"this is not a JPEG, just text\n" * 4, "notAnImage", "text named .jpg")
    bad("png_signature_only.png", png_rgb[:5], "truncated", "five bytes of a PNG signature")
    bad("png_truncated.png", png_rgb[: len(png_rgb) * 6 // 10], "truncated", "cut in the image data")
    bad("png_no_iend.png", png_rgb[:-12], "truncated", "all pixels present, IEND chunk missing")
    idat = png_rgb.index(b"IDAT")
    flipped = bytearray(png_rgb)
    flipped[idat + 40] ^= 0x55
    bad("png_bad_crc.png", bytes(flipped), "corrupt", "one byte flipped in IDAT (CRC mismatch)")
    bad("png_bad_zlib.png", refit_crc(flipped, idat - 4), "corrupt", "one byte flipped in IDAT, CRC recomputed (zlib error)")
    bomb_ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    bomb_rows = zlib.compress(b"\x00" * (100000 * 3 + 1) * 4, 9)
    bad("png_bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bomb_ihdr) + chunk(b"IDAT", bomb_rows) + chunk(b"IEND", b""),
        "tooLarge", "declares 100000x100000 RGB in a few hundred bytes", width=100000, height=100000)

    base = jpeg_bytes["jpeg_baseline.jpg"]
    bad("jpeg_truncated.jpg", base[: len(base) // 2], "truncated", "baseline cut in half (libjpeg pads with gray and warns)")
    prog = jpeg_bytes["jpeg_progressive.jpg"]
    bad("jpeg_progressive_truncated.jpg", prog[: len(prog) * 2 // 3], "truncated", "progressive cut at 2/3")
    bad("jpeg_no_eoi.jpg", base[:-2], "truncated", "all scan data present, EOI marker missing")
    bad("jpeg_header_only.jpg", base[:200], "truncated", "cut inside the headers")
    sos = base.index(b"\xff\xda")
    seg_len = struct.unpack(">H", base[sos + 2: sos + 4])[0]
    scan = sos + 2 + seg_len
    garbled = bytearray(base)
    garbled[scan + 100: scan + 102] = b"\xff\xd3"   # an out-of-place restart marker in the entropy data
    bad("jpeg_bad_marker.jpg", bytes(garbled), "corrupt", "stray RST3 marker in the scan data (libjpeg only warns)")
    sof = base.index(b"\xff\xc0")
    bomb = bytearray(base)
    bomb[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    bad("jpeg_bomb.jpg", bytes(bomb), "tooLarge", "SOF declares 60000x60000", width=60000, height=60000)
    b = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 200, 30, 40)).save(b, "JPEG", quality=90)
    bad("jpeg_cmyk.jpg", b.getvalue(), "unsupported", "CMYK JPEG: refused with a message")
    b = io.BytesIO()
    Image.fromarray(jrgb, "RGB").save(b, "GIF")
    bad("image.gif", b.getvalue(), "unsupported", "GIF: named as such in the message")

    manifest.sort(key=lambda e: e["file"])
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump({"generator": "Tools/make_image_fixtures.py", "fixtures": manifest}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(manifest)} fixtures to {out}")


def refit_crc(data, chunk_start):
    """Recomputes the CRC of the chunk whose length field starts at chunk_start."""
    data = bytearray(data)
    n = struct.unpack(">I", data[chunk_start: chunk_start + 4])[0]
    body = bytes(data[chunk_start + 4: chunk_start + 8 + n])
    data[chunk_start + 8 + n: chunk_start + 12 + n] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(data)


def check_with_pillow(path, expected):
    """Pillow must read our PNG as the golden says (16-bit colour: Pillow keeps the high
    byte, so within 1; 16-bit gray: Pillow gives the 16-bit values, compared scaled)."""
    im = Image.open(path)
    im.load()
    if im.mode in ("I;16", "I;16B", "I"):
        got = to8(np.asarray(im).astype(np.int64))
    elif im.mode == "P":
        got = np.asarray(im.convert("RGBA" if expected.shape[2] == 4 else "RGB"))
    elif im.mode in ("L", "1") and expected.shape[2] == 2:   # gray + tRNS
        got = np.asarray(im.convert("LA"))
    elif im.mode == "RGB" and expected.shape[2] == 4:         # RGB + tRNS
        got = np.asarray(im.convert("RGBA"))
    elif im.mode == "1":
        got = np.asarray(im.convert("L"))
    else:
        got = np.asarray(im)
    if got.ndim == 3 and got.shape[2] == 4 and expected.shape[2] == 2:   # Pillow reads LA;16 as RGBA
        got = got[:, :, [0, 3]]
    got = got.astype(np.int64).reshape(expected.shape)
    diff = np.abs(got - expected.astype(np.int64)).max()
    if diff > 1:
        raise SystemExit(f"{path}: Pillow reads it differently from the golden (max diff {diff}, mode {im.mode})")


if __name__ == "__main__":
    main()
