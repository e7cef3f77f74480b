#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files of every kind
each reader accepts, plus a few near misses. Run with Debian's python3 (Pillow for JPEG/PNG):
    /usr/bin/python3 fuzz/make_seeds.py
The files are committed; re-running rewrites them identically (fixed random seed)."""
import gzip, io, json, os, random, struct, zlib

from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
rng = random.Random(15)


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rand_bytes(n):
    return bytes(rng.randrange(256) for _ in range(n))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# ---- safetensors ----
def safetensors(tensors, metadata=None, checksums=True):
    header, data = {}, b""
    meta = dict(metadata or {})
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
        if checksums:
            meta["nabla.crc32c." + name] = "%08x" % crc32c(raw)
    if meta:
        header = {"__metadata__": meta, **header}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + data


f32 = lambda vals: struct.pack("<%df" % len(vals), *vals)
put("fuzz_safetensors", "small", safetensors([("w", "F32", [2, 3], f32([rng.uniform(-1, 1) for _ in range(6)])),
                                              ("b", "F32", [3], f32([0.5, -1, 2]))], {"step": "12"}))
put("fuzz_safetensors", "dtypes", safetensors([
    ("d", "F64", [2], struct.pack("<2d", 1.5, -2)), ("i", "I64", [1], struct.pack("<q", 7)),
    ("j", "I32", [2], struct.pack("<2i", 3, -4)), ("h", "F16", [2], b"\x00\x3c\x00\xc0"),
    ("g", "BF16", [2], b"\x80\x3f\x00\xc0"), ("u", "U8", [3], b"\x01\x02\x03"), ("m", "BOOL", [2], b"\x01\x00"),
    ("e", "F32", [0, 4], b""), ("s", "F32", [], f32([3.25]))]))
put("fuzz_safetensors", "no_checksums", safetensors([("x", "F32", [4], f32([1, 2, 3, 4]))], checksums=False))
put("fuzz_safetensors", "empty", safetensors([]))
put("fuzz_safetensors", "nested", struct.pack("<Q", 24) + b'{"w":[[[[[[[[1]]]]]]]]}  ')
put("fuzz_safetensors", "bignum", struct.pack("<Q", 64) +
    b'{"w":{"dtype":"F32","shape":[1e309],"data_offsets":[0,4]}}     ' + b"\0\0\0\0")


# ---- IDX ----
def idx(magic, dims, body):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + body


put("fuzz_idx", "images", idx(0x803, [2, 3, 4], rand_bytes(24)))
put("fuzz_idx", "labels", idx(0x801, [5], bytes(rng.randrange(10) for _ in range(5))))
put("fuzz_idx", "images.gz", gzip.compress(idx(0x803, [3, 4, 4], rand_bytes(48)), mtime=0))
put("fuzz_idx", "labels.gz", gzip.compress(idx(0x801, [4], b"\x01\x02\x03\x04"), mtime=0))
put("fuzz_idx", "two_members.gz", gzip.compress(idx(0x801, [2], b""), mtime=0) + gzip.compress(b"\x05\x06", mtime=0))
put("fuzz_idx", "huge_dims", idx(0x803, [0xFFFFFFFF] * 3, b""))
put("fuzz_idx_gzip", "images", idx(0x803, [2, 2, 3], rand_bytes(12)))
put("fuzz_idx_gzip", "labels", idx(0x801, [3], b"\x00\x09\x04"))
put("fuzz_idx_gzip", "zero_images", idx(0x803, [0, 28, 28], b""))

# ---- CIFAR ----
put("fuzz_cifar", "cifar10_two", bytes([3]) + rand_bytes(3072) + bytes([9]) + rand_bytes(3072))
put("fuzz_cifar", "cifar100_one", bytes([4, 42]) + rand_bytes(3072))
put("fuzz_cifar", "partial", bytes([1]) + rand_bytes(100))


# ---- images ----
def img(mode, size):
    im = Image.new(mode, size)
    im.putdata([tuple(rng.randrange(256) for _ in mode) if len(mode) > 1 else rng.randrange(256)
                for _ in range(size[0] * size[1])])
    return im


def save(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


put("fuzz_image", "rgb.png", save(img("RGB", (5, 4)), "PNG"))
put("fuzz_image", "gray.png", save(img("L", (6, 3)), "PNG"))
put("fuzz_image", "rgba.png", save(img("RGBA", (3, 3)), "PNG"))
put("fuzz_image", "palette.png", save(img("RGB", (4, 4)).convert("P", palette=Image.ADAPTIVE, colors=4), "PNG"))
put("fuzz_image", "optimized.png", save(img("RGB", (9, 7)), "PNG", optimize=True))
put("fuzz_image", "gray16.png", save(Image.new("I;16", (3, 2), 1000), "PNG"))
put("fuzz_image", "rgb.jpg", save(img("RGB", (16, 8)), "JPEG", quality=80))
put("fuzz_image", "gray.jpg", save(img("L", (8, 8)), "JPEG", quality=90))
put("fuzz_image", "progressive.jpg", save(img("RGB", (17, 9)), "JPEG", progressive=True, quality=70))
put("fuzz_image", "cmyk.jpg", save(img("CMYK", (8, 8)), "JPEG"))
put("fuzz_image", "subsampled.jpg", save(img("RGB", (24, 16)), "JPEG", subsampling=2))

# ---- schedule specs ----
for i, spec in enumerate(["constant", "cosine", "cosine:total=1000,end=1e-5,warmup=50", "step:every=30,gamma=0.1",
                          "multistep:milestones=30/60/80", "poly:power=2,total=500,warmup_start=0.1",
                          "cosine:lr=0.4,warmup=10,warmup_start=0.01", "step:every=9223372036854775807"]):
    put("fuzz_schedule", "spec%d" % i, spec.encode())
