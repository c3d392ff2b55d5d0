#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/TARGET): small valid inputs of each
kind, from which the fuzzers mutate. Rerun to regenerate; inputs that once crashed a target
are kept beside them by hand (named crash-*), never regenerated."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# Model descriptions: the shipped ones and a tiny one with every layer type.
for name in ("alexnet-fashion.json", "alexnet2012.json", "alexnet-torchvision.json"):
    with open(os.path.join(ROOT, "model", name), "rb") as f:
        out("model", name, f.read())
tiny = {
    "name": "tiny", "input": {"channels": 3, "height": 15, "width": 15},
    "preprocess": {"resize": 15, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "classes": 5,
    "layers": [
        {"name": "c1", "type": "conv2d", "out_channels": 6, "kernel": 3, "stride": 2, "padding": 1,
         "weight": "c1.w", "bias": "c1.b"},
        {"type": "relu"},
        {"type": "lrn", "size": 3, "alpha": 0.1, "beta": 0.75, "k": 1},
        {"type": "max_pool", "kernel": 3, "stride": 2, "padding": 1},
        {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel": [1, 3], "padding": [0, 1], "groups": 2,
         "weight": "c2.w"},
        {"type": "adaptive_avg_pool", "output": 4},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.5},
        {"name": "f1", "type": "linear", "out_features": 7, "weight": "f1.w", "bias": "f1.b"},
        {"type": "relu"},
        {"name": "f2", "type": "linear", "out_features": 5, "weight": "f2.w", "bias": "f2.b"},
        {"type": "softmax"},
    ],
}
out("model", "tiny.json", json.dumps(tiny, indent=1).encode())


# safetensors: F32, F16 and BF16 tensors with metadata.
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


f32 = struct.pack("<6f", 1, -2, 0.5, 3, 0, 7)
out("safetensors", "f32.safetensors", safetensors({"w": ("F32", [2, 3], f32), "b": ("F32", [2], f32[:8])},
                                                  {"model": "tiny"}))
out("safetensors", "f16-bf16.safetensors",
    safetensors({"h": ("F16", [3], struct.pack("<3H", 0x3C00, 0xC000, 0x3800)),
                 "g": ("BF16", [2], struct.pack("<2H", 0x3F80, 0x4000)),
                 "i": ("I64", [1], struct.pack("<q", 5))}))
out("safetensors", "checkpoint.safetensors",
    safetensors({"c1.w": ("F32", [1, 1, 1, 1], f32[:4]), "momentum/c1.w": ("F32", [1, 1, 1, 1], f32[4:8])},
                {"format": "vkalex checkpoint 1", "model": "tiny", "state": json.dumps({"step": 3, "lr": 0.01})}))


# IDX pairs: 4 bytes of the images file's length, the images file, the labels file.
def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


images = idx([3, 4, 5], bytes(range(60)))
labels = idx([3], bytes([1, 0, 9]))
out("idx", "plain.idx", struct.pack("<I", len(images)) + images + labels)
gz_images, gz_labels = gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)
out("idx", "gzip.idx", struct.pack("<I", len(gz_images)) + gz_images + gz_labels)


# Images: PNG (RGB, gray, RGBA), PNM (P5, P6), BMP and TGA by hand; JPEG through Debian's stb.
def png(w, h, color_type, channels, pixels):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + pixels[y * w * channels:(y + 1) * w * channels] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


w, h = 6, 4
rgb = bytes((x * 40 + y * 7 + c * 90) % 256 for y in range(h) for x in range(w) for c in range(3))
gray = bytes((x * 40 + y * 30) % 256 for y in range(h) for x in range(w))
out("image", "rgb.png", png(w, h, 2, 3, rgb))
out("image", "gray.png", png(w, h, 0, 1, gray))
out("image", "rgba.png", png(w, h, 6, 4, bytes(v for i in range(w * h) for v in (*rgb[3 * i:3 * i + 3], 200))))
out("image", "rgb.ppm", b"P6\n%d %d\n255\n" % (w, h) + rgb)
out("image", "gray.pgm", b"P5\n%d %d\n255\n" % (w, h) + gray)
bmp_rows = b"".join(bytes(v for x in range(w) for v in rgb[(y * w + x) * 3:(y * w + x) * 3 + 3][::-1]) +
                    b"\0" * (-(w * 3) % 4) for y in reversed(range(h)))
out("image", "rgb.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp_rows), 0, 0, 54) +
    struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(bmp_rows), 2835, 2835, 0, 0) + bmp_rows)
out("image", "rgb.tga", struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0x20) +
    bytes(v for i in range(w * h) for v in rgb[3 * i:3 * i + 3][::-1]))
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "jpg.c")
    with open(src, "w") as f:
        f.write('#include <stb_image_write.h>\n'
                'int main(int c, char** v) { unsigned char p[%d] = {%s};\n'
                '  return !stbi_write_jpg(v[1], %d, %d, 3, p, 90); }\n' % (len(rgb), ",".join(map(str, rgb)), w, h))
    subprocess.run(["cc", "-I/usr/include/stb", src, "-o", os.path.join(tmp, "jpg"), "-lstb"], check=True)
    subprocess.run([os.path.join(tmp, "jpg"), os.path.join(tmp, "rgb.jpg")], check=True)
    shutil.copy(os.path.join(tmp, "rgb.jpg"), os.path.join(HERE, "corpus", "image", "rgb.jpg"))
print("corpora written to", os.path.join(HERE, "corpus"))
