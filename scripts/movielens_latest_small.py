#!/usr/bin/env python3
"""MovieLens ml-latest-small from Debian's r-cran-dslabs, written back as GroupLens' CSV files.

Debian's r-cran-dslabs (0.7.4) holds ml-latest-small (GroupLens, 2016: 100,004 ratings by 671 users of 9,066
movies) as the R data object `movielens`: one row per rating with movieId, title (without the year), year,
genres (a factor of "|"-separated names), userId, rating (0.5..5 in half steps) and timestamp
(dslabs' script/make-movielens.R). This script reads that object straight from the package's lazy-load
database (data/Rdata.rdx + Rdata.rdb: R's serialization format, XDR, gzip/zlib/bzip2/xz), without R, and
writes the two GroupLens files the C++ reader (data/movielens.h, read_latest_small) reads:

  ratings.csv   userId,movieId,rating,timestamp            one row per rating, sorted by (userId, movieId)
  movies.csv    movieId,title,genres                         title "Name (year)", quoted when it holds a
                                                             comma or a quote (RFC 4180); genres "A|B"

Movies nobody rated are not in the R object, so movies.csv lists only the 9,066 rated ones. dslabs split
"Name (year)" with the regex (.*)\\s\\((\\d+)\\) and left both parts NA where it did not match; such movies
get the title "movie <id>" here (counted on stderr).

  python3 scripts/movielens_latest_small.py OUT_DIR [--dslabs DIR]

DIR is the installed package folder (default /usr/lib/R/site-library/dslabs). Without it installed, fetch
and unpack only the .deb (its R dependencies are not needed):
  apt-get download r-cran-dslabs && dpkg-deb -x r-cran-dslabs_*.deb /tmp/dslabs
  python3 scripts/movielens_latest_small.py shared/data/ml-latest-small \\
      --dslabs /tmp/dslabs/usr/lib/R/site-library/dslabs
"""
import argparse
import bz2
import csv
import gzip
import lzma
import math
import os
import struct
import sys
import zlib

NA_INT = -(2**31)


class RReader:
    """R's unserialize for the XDR format, versions 2 and 3: the subset data frames use."""

    def __init__(self, data, what):
        self.d, self.p, self.what, self.refs = data, 0, what, []

    def fail(self, msg):
        raise SystemExit(f"movielens_latest_small: {self.what}: byte {self.p}: {msg}")

    def int(self):
        if self.p + 4 > len(self.d):
            self.fail("expected 4 more bytes, got the end of the data")
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def ints(self, n):
        v = struct.unpack_from(f">{n}i", self.d, self.p)
        self.p += 4 * n
        return list(v)

    def doubles(self, n):
        v = struct.unpack_from(f">{n}d", self.d, self.p)
        self.p += 8 * n
        return list(v)

    def header(self):
        if self.d[:2] != b"X\n":
            self.fail(f"expected the XDR serialization header 'X\\n', got {self.d[:2]!r}")
        self.p = 2
        version = self.int()
        self.int(), self.int()
        if version == 3:
            n = self.int()
            self.p += n
        elif version != 2:
            self.fail(f"expected serialization version 2 or 3, got {version}")
        return self.item()

    def charsxp(self):
        n = self.int()
        if n == -1:
            return None
        s = self.d[self.p : self.p + n].decode("utf-8", errors="replace")
        self.p += n
        return s

    def attributes(self, flags):
        return self.item() if flags & (1 << 9) else None

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        if t == 254:  # NILVALUE
            return None
        if t in (253, 242, 241, 251, 252):  # global/empty/base env, missing arg, unbound: not data
            return None
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == 1:  # SYMSXP
            self.int()  # the CHARSXP's flags
            s = ("sym", self.charsxp())
            self.refs.append(s)
            return s
        if t in (2, 239):  # LISTSXP / ATTRLISTSXP: a pairlist, as {tag: value}
            out = {}
            while t in (2, 239):
                self.attributes(flags)
                tag = self.item() if flags & (1 << 10) else None
                out[tag[1] if tag else str(len(out))] = self.item()
                flags = self.int()
                t = flags & 0xFF
            if t != 254:
                self.fail(f"expected the end of a pairlist, got type {t}")
            return out
        if t == 9:  # CHARSXP
            return self.charsxp()
        if t in (10, 13):  # LGLSXP, INTSXP
            v = self.ints(self.int())
            return ("vec", v, self.attributes(flags))
        if t == 14:  # REALSXP
            v = self.doubles(self.int())
            return ("vec", v, self.attributes(flags))
        if t == 16:  # STRSXP
            n = self.int()
            v = []
            for _ in range(n):
                self.int()
                v.append(self.charsxp())
            return ("vec", v, self.attributes(flags))
        if t == 19:  # VECSXP
            v = [self.item() for _ in range(self.int())]
            return ("vec", v, self.attributes(flags))
        if t == 238:  # ALTREP: class info, state, attributes
            info = self.item()
            state = self.item()
            attr = self.item()
            cls = info["0"][1] if isinstance(info, dict) else None
            if cls in ("compact_intseq", "compact_realseq"):
                n, start, step = state[1][:3]
                return ("vec", [start + step * i for i in range(int(n))], attr)
            if cls and cls.startswith("wrap_"):
                return ("vec", state[1][0][1], attr)
            self.fail(f"unsupported ALTREP class {cls}")
        self.fail(f"unsupported R object type {t} (this reader knows data frames)")


def decompress(blob, what):
    """One lazy-load entry: 4-byte length, then zlib, or a type byte and bzip2/xz/none."""
    (n,) = struct.unpack_from(">I", blob, 0)
    body = blob[4:]
    try:
        out = zlib.decompress(body)
    except zlib.error:
        kind, rest = body[:1], body[1:]
        if kind == b"2":
            out = bz2.decompress(rest)
        elif kind == b"X":
            out = lzma.decompress(rest)
        elif kind == b"Z":
            out = zlib.decompress(rest)
        elif kind == b"0":
            out = rest
        else:
            raise SystemExit(f"movielens_latest_small: {what}: unknown compression {kind!r}")
    if len(out) != n:
        raise SystemExit(f"movielens_latest_small: {what}: expected {n} bytes after decompression, got {len(out)}")
    return out


def load_movielens(dslabs):
    rdx_path = os.path.join(dslabs, "data", "Rdata.rdx")
    rdb_path = os.path.join(dslabs, "data", "Rdata.rdb")
    for p in (rdx_path, rdb_path):
        if not os.path.isfile(p):
            raise SystemExit(f"movielens_latest_small: expected {p} (r-cran-dslabs' data), got no such file")
    with open(rdx_path, "rb") as f:
        raw = f.read()
    index = RReader(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else decompress(raw, rdx_path), rdx_path).header()
    top = dict(zip(index[2]["names"][1], index[1]))
    variables = top["variables"]
    names = variables[2]["names"][1]
    if "movielens" not in names:
        raise SystemExit(f"movielens_latest_small: {rdx_path}: expected an object 'movielens', got {names}")
    off, length = (int(x) for x in variables[1][names.index("movielens")][1])
    with open(rdb_path, "rb") as f:
        f.seek(off)
        blob = f.read(length)
    return RReader(decompress(blob, rdb_path), rdb_path + ":movielens").header()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--dslabs", default="/usr/lib/R/site-library/dslabs")
    a = ap.parse_args()
    df = load_movielens(a.dslabs)
    cols = dict(zip(df[2]["names"][1], df[1]))
    want = ["movieId", "title", "year", "genres", "userId", "rating", "timestamp"]
    missing = [c for c in want if c not in cols]
    if missing:
        raise SystemExit(f"movielens_latest_small: expected columns {want}, missing {missing}")
    movie, title, year = cols["movieId"][1], cols["title"][1], cols["year"][1]
    genre_codes, genre_levels = cols["genres"][1], cols["genres"][2]["levels"][1]
    user, rating, ts = cols["userId"][1], cols["rating"][1], cols["timestamp"][1]
    os.makedirs(a.out_dir, exist_ok=True)
    movies, untitled = {}, 0
    rows = []
    for k in range(len(movie)):
        m = int(movie[k])
        if m not in movies:
            y = year[k]
            y_ok = y is not None and not (isinstance(y, float) and math.isnan(y)) and y != NA_INT
            if title[k] is None or not y_ok:
                t = f"movie {m}"
                untitled += 1
            else:
                t = f"{title[k]} ({int(y)})"
            g = genre_levels[genre_codes[k] - 1] if genre_codes[k] != NA_INT else "(no genres listed)"
            movies[m] = (t, g)
        r = rating[k]
        rows.append((int(user[k]), m, f"{r:.1f}", int(ts[k])))
    rows.sort()
    with open(os.path.join(a.out_dir, "ratings.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        w.writerows(rows)
    with open(os.path.join(a.out_dir, "movies.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["movieId", "title", "genres"])
        for m in sorted(movies):
            w.writerow([m, *movies[m]])
    print(
        f"movielens_latest_small: {len(rows)} ratings by {len(set(r[0] for r in rows))} users of {len(movies)} "
        f"movies -> {a.out_dir}/ratings.csv, movies.csv ({untitled} titles without a year: 'movie <id>')"
    )


if __name__ == "__main__":
    main()
