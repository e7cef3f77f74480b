#!/usr/bin/env python3
"""Renders a Chrome trace / Perfetto JSON (NABLA_TRACE=run.json, engine/trace.h) as an SVG timeline, for
machines without a browser or network (the Perfetto UI cannot be loaded there). Standard library only.

    python3 scripts/trace_to_svg.py run.json run.svg [--title T] [--width 1600] [--from-ms A --to-ms B]
    python3 scripts/trace_to_svg.py run.json step.svg --step 5     # the 5th training step only

One band per track: the host's threads ("host / thread N"), then each GPU's streams ("GPU 0 / compute
stream", "GPU 0 / copy stream") as the trace's metadata names them. Inside a band, ranges nest downwards
(a backward node inside "backward", its kernels inside the node). Boxes are coloured by category (kernel,
autograd, optim, data, copy, user) and labelled with the op's name where they are wide enough; hovering a
box in a viewer shows its name, duration and args (an SVG <title>). Boxes narrower than --min-px are left
out and counted in the footer. Prints one line per track (events, busy time) on stdout, and with --top N
the N kernel (or copy) names with the most time on each track.

--step K shows one training step: from the end of the (K-1)-th optimizer step (cat "optim") on the host to
the end of the K-th (from the trace's start for K = 1), extended to the end of the device work that the
host queued inside that window (a GPU runs behind the host).
"""
import argparse
import html
import json
import sys

COLOURS = {
    "kernel": "#4e79a7",
    "autograd": "#f28e2b",
    "optim": "#59a14f",
    "data": "#e15759",
    "copy": "#b07aa1",
    "user": "#9c755f",
    "collective": "#edc948",
}
OTHER = "#bab0ac"
ROW = 16  # pixels per nesting level
LEFT = 190  # the track names' column
TOP = 48


def fail(msg):
    sys.exit(f"trace_to_svg: {msg}")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        fail(f"cannot read '{path}': {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"'{path}' is not JSON (line {e.lineno}: {e.msg}); expected a Chrome trace")
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        fail(f"'{path}': expected an object with a 'traceEvents' array (or an array), got {type(data).__name__}")
    return events


def intervals(events):
    """(track key -> list of [t0, t1, name, cat, args]) and track names, from X events and B/E pairs."""
    tracks, names, open_ = {}, {}, {}
    for e in events:
        ph = e.get("ph")
        key = (e.get("pid", 0), e.get("tid", 0))
        if ph == "M":
            if e.get("name") in ("process_name", "thread_name"):  # not thread_sort_index and the like
                names[(key[0], key[1] if e.get("name") == "thread_name" else None)] = e.get("args", {}).get("name", "")
        elif ph == "X":
            t0 = float(e["ts"])
            tracks.setdefault(key, []).append([t0, t0 + float(e.get("dur", 0)), e.get("name", "?"),
                                               e.get("cat", ""), e.get("args")])
        elif ph == "B":
            open_.setdefault(key, []).append(e)
        elif ph == "E":
            stack = open_.get(key)
            if stack:
                b = stack.pop()
                tracks.setdefault(key, []).append([float(b["ts"]), float(e["ts"]), b.get("name", "?"),
                                                   b.get("cat", ""), b.get("args")])
    return tracks, names


def track_label(key, names, host_pid):
    pid, tid = key
    proc = names.get((pid, None), "host" if pid == host_pid else f"process {pid}")
    thread = names.get((pid, tid), f"thread {tid}")
    return f"{proc} / {thread}"


def layout(ivs):
    """Nesting depth of each interval (sorted by start, longer first): the number of open enclosing ones."""
    ivs.sort(key=lambda i: (i[0], -(i[1] - i[0])))
    stack, depth = [], []
    for i in ivs:
        while stack and stack[-1] <= i[0]:
            stack.pop()
        depth.append(len(stack))
        stack.append(i[1])
    return depth


def fmt_us(us):
    return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.1f} us"


def step_window(tracks, host_pid, k):
    """The k-th training step's window (see --step), in trace microseconds."""
    ends = sorted(i[1] for key, ivs in tracks.items() if key[0] == host_pid for i in ivs if i[3] == "optim")
    if k < 1 or k > len(ends):
        fail(f"--step {k}: expected 1..{len(ends)} (the trace has {len(ends)} optimizer steps)")
    lo = ends[k - 2] if k >= 2 else min(i[0] for ivs in tracks.values() for i in ivs)
    hi = ends[k - 1]
    device_ends = [i[1] for key, ivs in tracks.items() if key[0] != host_pid for i in ivs if lo <= i[0] < hi]
    return lo, max([hi] + device_ends)


def render(events, title, width, from_ms, to_ms, min_px, step=None, top=0):
    tracks, names = intervals(events)
    if not tracks:
        fail("no complete (X) or begin/end (B/E) events in the trace")
    hosts = [pid for (pid, tid), name in names.items() if tid is None and name == "host"]
    host_pid = hosts[0] if hosts else min(pid for pid, _ in tracks)
    t_lo = min(i[0] for ivs in tracks.values() for i in ivs)
    t_hi = max(i[1] for ivs in tracks.values() for i in ivs)
    if step is not None:
        t_lo, t_hi = step_window(tracks, host_pid, step)
    if from_ms is not None:
        t_lo = max(t_lo, from_ms * 1000)
    if to_ms is not None:
        t_hi = min(t_hi, to_ms * 1000)
    if t_hi <= t_lo:
        fail(f"empty time window [{t_lo / 1000:.3f}, {t_hi / 1000:.3f}] ms")
    span = t_hi - t_lo
    plot_w = width - LEFT - 10
    x_of = lambda t: LEFT + (t - t_lo) / span * plot_w  # noqa: E731

    body, y, skipped, summary = [], TOP, 0, []
    for key in sorted(tracks, key=lambda k: (k[0] != host_pid, k)):
        ivs = [i for i in tracks[key] if i[1] >= t_lo and i[0] <= t_hi]
        if not ivs:
            continue
        depth = layout(ivs)
        levels = max(depth) + 1
        label = track_label(key, names, host_pid)
        busy = sum(i[1] - i[0] for i, d in zip(ivs, depth) if d == 0)
        summary.append(f"{label:40s} {len(ivs):7d} events  {fmt_us(busy):>12s} busy (top level)")
        if top:
            totals = {}
            for (t0, t1, name, cat, _), d in zip(ivs, depth):
                if cat in ("kernel", "copy", "collective"):
                    totals[name] = totals.get(name, 0.0) + (t1 - t0)
            for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
                summary.append(f"    {name:36s} {fmt_us(us):>12s}")
        h = levels * ROW
        body.append(f'<rect x="0" y="{y - 2}" width="{width}" height="{h + 4}" fill="#f6f6f6"/>')
        body.append(f'<text x="6" y="{y + 12}" class="track">{html.escape(label)}</text>')
        for (t0, t1, name, cat, args), d in zip(ivs, depth):
            x0, x1 = x_of(max(t0, t_lo)), x_of(min(t1, t_hi))
            w = x1 - x0
            if w < min_px:
                skipped += 1
                continue
            colour = COLOURS.get(cat, OTHER)
            tip = f"{name} ({cat}) {fmt_us(t1 - t0)}"
            if args:
                tip += " " + json.dumps(args, separators=(",", ":"))
            by = y + d * ROW
            body.append(f'<g><title>{html.escape(tip)}</title><rect x="{x0:.2f}" y="{by}" width="{w:.2f}" '
                        f'height="{ROW - 2}" fill="{colour}" stroke="#333" stroke-width="0.3"/>')
            chars = int(w / 6.2)
            if chars >= 3:
                text = name if len(name) <= chars else name[: chars - 1] + "…"
                body.append(f'<text x="{x0 + 2:.2f}" y="{by + 11}" class="box">{html.escape(text)}</text>')
            body.append("</g>")
        y += h + 8

    # Time axis: about 10 ticks at a round step.
    axis = []
    raw = span / 10
    step = 10 ** len(str(int(max(raw, 1)))) / 10
    for m in (1, 2, 5, 10):
        if step * m >= raw:
            step *= m
            break
    t = (t_lo // step + 1) * step
    while t < t_hi:
        x = x_of(t)
        axis.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{y}" stroke="#ccc" stroke-width="0.5"/>')
        axis.append(f'<text x="{x:.1f}" y="{TOP - 12}" class="tick" text-anchor="middle">{t / 1000:g} ms</text>')
        t += step
    legend = []
    lx = LEFT
    for cat, colour in list(COLOURS.items()) + [("other", OTHER)]:
        legend.append(f'<rect x="{lx}" y="{y + 6}" width="10" height="10" fill="{colour}"/>'
                      f'<text x="{lx + 14}" y="{y + 15}" class="tick">{cat}</text>')
        lx += 80
    footer = (f"{fmt_us(span)} shown; {skipped} boxes narrower than {min_px} px left out"
              if skipped else f"{fmt_us(span)} shown")
    height = y + 40
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="DejaVu Sans, Helvetica, sans-serif">',
        "<style>.track{font-size:11px;font-weight:bold}.box{font-size:9px;fill:#fff}"
        ".tick{font-size:10px;fill:#444}.title{font-size:14px;font-weight:bold}</style>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="6" y="18" class="title">{html.escape(title)}</text>',
        *axis, *body, *legend,
        f'<text x="{lx + 10}" y="{y + 15}" class="tick">{html.escape(footer)}</text>',
        "</svg>",
    ]
    return "\n".join(svg) + "\n", summary


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trace")
    p.add_argument("svg")
    p.add_argument("--title", default=None)
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--from-ms", type=float, default=None, help="start of the window (trace time, ms)")
    p.add_argument("--to-ms", type=float, default=None, help="end of the window (trace time, ms)")
    p.add_argument("--step", type=int, default=None, help="show the K-th training step only")
    p.add_argument("--top", type=int, default=0, help="print each track's N kernels with the most time")
    p.add_argument("--min-px", type=float, default=0.4, help="leave out boxes narrower than this")
    a = p.parse_args()
    if a.width < LEFT + 100:
        fail(f"--width {a.width}: expected at least {LEFT + 100}")
    svg, summary = render(load(a.trace), a.title or a.trace, a.width, a.from_ms, a.to_ms, a.min_px, a.step, a.top)
    with open(a.svg, "w", encoding="utf-8") as f:
        f.write(svg)
    print("\n".join(summary))
    print(f"trace_to_svg: wrote {a.svg} ({len(svg) // 1024} KiB)")


if __name__ == "__main__":
    main()
