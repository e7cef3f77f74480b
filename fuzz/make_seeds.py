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

# ---- wave 2: options, tokenizers, Criteo, Darknet cfg ----
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fixtures = os.path.join(repo, "tests", "data", "fixtures")


def read(path):
    with open(path, "rb") as f:
        return f.read()


# fuzz_options: argv tokens one per line; after 0x01 a --config file.
for i, args in enumerate([
        b"--epochs\n3\n--lr=0.1\n--model\nmlp\n--nesterov", b"--help", b"--print-config\n--threads\n8",
        b"--momentum\n0\n--name\nrun-1\n--verbose", b"--lr\nnan", b"--epochs\n-1", b"--threads\n4294967297",
        b"--lr\n--epochs\n3", b"--epoch\n3", b"bare", b"--model\nvgg", b"--nesterov\n--momentum=0",
        b"--lr\n1e309", b"--epochs=3\n--epochs=4",
        b"--lr\n0.2\x01# a config\nepochs = 4\nnesterov = true\nmodel = resnet18\n",
        b"\x01lr = -1\n", b"\x01[section]\nunknown = 1\n"]):
    put("fuzz_options", "args%d" % i, args)

# fuzz_wordpiece: a mode byte (options), then the text; mode >= 0x80: vocab.txt, 0x00, text.
bert_vocab = read(os.path.join(fixtures, "bert_vocab.txt"))
for i, (mode, text) in enumerate([
        (0x01, "The quick brown fox! Unaffable cafe\u0301 \u4e2d\u56fd hello worlds"),
        (0x00, "ISN'T resume, na\u00efve jumping?\tthe [MASK] fox"), (0x41, "a b c d e f g\tthe quick brown"),
        (0x11, "[CLS] hello [SEP]\tworld [PAD]"), (0x21, "unaffableunaffableunaffable \x00\x7f\ufffd"),
        (0x81, bert_vocab.decode() + "\0the quick brown fox"), (0x81, "[UNK]\n[CLS]\n\0the")]):
    put("fuzz_wordpiece", "text%d" % i, bytes([mode]) + text.encode("utf-8", "surrogatepass"))

# fuzz_bpe: 0x00 + text for the fixture tokenizer; 0x01 + encoder.json + 0x00 + vocab.bpe.
for i, text in enumerate([b"Hello world, the quick brown fox's 123 jumps!\n\n  ", b"<|endoftext|>a<|im_start|>",
                          "caf\u00e9 \u4e2d\u56fd \U0001F600".encode(), b"\xff\xfe\x80 invalid utf-8 \xc3",
                          b"   \t\r\n x  yy"]):
    put("fuzz_bpe", "text%d" % i, b"\x00" + text)
put("fuzz_bpe", "files0", b"\x01" + read(os.path.join(fixtures, "gpt2_encoder.json")) + b"\0" +
    read(os.path.join(fixtures, "gpt2_vocab.bpe")))
put("fuzz_bpe", "files1", b"\x01" + read(os.path.join(fixtures, "gpt2_encoder.json")) + b"\0#version: 0.2\nx y\n")

# fuzz_criteo: mode byte (bit 0 binary, bit 1 CSV / unverified binary, bit 2 no label, bit 3 skip bad rows).
with open(os.path.join(repo, "..", "shared", "data", "criteo-sample", "criteo_sample.txt"), "rb") as f:
    csv_lines = [next(f) for _ in range(12)]
csv = b"".join(csv_lines)
tab = b"".join(b"\t".join(x[:-2] if x.endswith(b".0") else x for x in l.rstrip(b"\n").split(b",")) + b"\n"
               for l in csv_lines[1:])
put("fuzz_criteo", "tab", b"\x00" + tab)
put("fuzz_criteo", "tab_gz", b"\x00" + gzip.compress(tab, mtime=0))
put("fuzz_criteo", "tab_nolabel", b"\x04" + b"".join(l.split(b"\t", 1)[1] for l in tab.splitlines(True)))
put("fuzz_criteo", "tab_bad", b"\x08" + tab[:300] + b"\n1\t2\tzz\n" + tab[300:])
put("fuzz_criteo", "csv", b"\x02" + csv)
put("fuzz_criteo", "csv_crlf", b"\x02" + csv.replace(b"\n", b"\r\n"))


def criteo_binary(rows, day_rows, tables):
    align = lambda x: (x + 63) // 64 * 64
    n = len(rows)
    hb = align(88 + 8 * (26 + len(day_rows)))
    lab, den = hb, align(hb + n)
    spa = align(den + 52 * n)
    end = spa + 104 * n
    body = bytearray(end - hb)
    for i, (label, dense, sparse) in enumerate(rows):
        body[lab - hb + i] = label
        struct.pack_into("<13f", body, den - hb + 52 * i, *dense)
        struct.pack_into("<26i", body, spa - hb + 104 * i, *sparse)
    h = 0xcbf29ce484222325
    for b in body:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    head = bytearray(hb)
    head[0:8] = b"NBCRITEO"
    struct.pack_into("<IIQQIIIIQQQQQ", head, 8, 1, 0, hb, n, 13, 26, 0, len(day_rows), h, lab, den, spa, end)
    struct.pack_into("<%dq" % (26 + len(day_rows)), head, 88, *tables, *day_rows)
    return bytes(head) + bytes(body)


rows = [(rng.randrange(2), [rng.random() * 5 for _ in range(13)], [rng.randrange(10) for _ in range(26)])
        for _ in range(5)]
put("fuzz_criteo", "binary", b"\x01" + criteo_binary(rows, [3, 2], [10] * 26))
put("fuzz_criteo", "binary_one_day", b"\x03" + criteo_binary(rows[:2], [2], [10] * 26))

# fuzz_darknet_cfg: Darknet's own small cfg files, and a few near misses.
for name in ["yolov3-tiny.cfg", "yolov2-tiny.cfg", "tiny.cfg"]:
    path = os.path.join("/usr/share/darknet/cfg", name)
    if os.path.exists(path):
        put("fuzz_darknet_cfg", name, read(path))
put("fuzz_darknet_cfg", "small.cfg", b"[net]\nwidth=32 # comment\nheight = 32\n; note\n\n[convolutional]\n"
    b"filters=16\nsize=3\nactivation=leaky\nanchors = 10,14,  23,27\nscale=1e-3\n[route]\nlayers=-1,-4\n")
put("fuzz_darknet_cfg", "bad.cfg", b"width=3\n[net\n[]\nkey\n")
