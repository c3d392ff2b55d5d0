#!/usr/bin/env python3
"""Compares bench results: several `bench --json` files in, one Markdown table and one SVG
bar chart out. Standard library only.

usage: compare.py RESULT.json [RESULT.json ...] [--markdown OUT.md] [--svg OUT.svg]

The table has one row per (file, batch): device, driver, model, mode (with ", f16" for fp16
storage), batch, median ms,
images/s, GFLOP/s and, where the file has a peak, the share of the vec4 FMA peak; then, per
layer, GFLOP/s side by side. The chart shows images/s per (device, batch). Without
--markdown the table goes to standard output.
"""
import json
import sys
from xml.sax.saxutils import escape


def fail(message):
    print(f"compare.py: {message}", file=sys.stderr)
    sys.exit(1)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path} is not JSON: {e}")
    if not isinstance(doc, dict) or doc.get("schema") != "vkalex-bench/1":
        fail(f"{path} is not a vkalex bench result (schema vkalex-bench/1)")
    for key in ("device", "model", "mode", "runs"):
        if key not in doc:
            fail(f"{path} has no \"{key}\"")
    return doc


def md(text):
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def label(doc):
    d = doc["device"]
    return f"{d['name']} ({d.get('driver', '')} {d.get('driver_version', '')})".strip()


def mode(doc):
    """The mode, marked where the file was made with fp16 storage (files before it: f32)."""
    return doc["mode"] + (", f16" if doc.get("storage", "f32") == "f16" else "")


def column(doc, run):
    return f"{doc['device']['name']}{' f16' if doc.get('storage') == 'f16' else ''} b{run['batch']}"


def markdown(docs):
    lines = ["| device | model | mode | batch | median ms | images/s | GFLOP/s | of vec4 peak |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for doc in docs:
        peak = doc.get("peak", {}).get("fma_vec4_gflops")
        for run in doc["runs"]:
            share = f"{100 * run['gflops'] / peak:.1f}%" if peak else "-"
            lines.append(f"| {md(label(doc))} | {md(doc['model'])} | {md(mode(doc))} | {run['batch']} | "
                         f"{run['median_ms']:.2f} | {run['images_per_s']:.1f} | {run['gflops']:.2f} | {share} |")
    # Per layer, the GFLOP/s of each (file, batch) side by side.
    columns = [(doc, run) for doc in docs for run in doc["runs"]]
    names = []
    for doc, run in columns:
        for layer in run.get("layers", []):
            key = (layer["name"], layer["phase"])
            if layer["flop"] and key not in names:
                names.append(key)
    if names:
        lines += ["", "GFLOP/s per layer:", "",
                  "| layer | " + " | ".join(md(column(doc, run)) for doc, run in columns) + " |",
                  "| --- |" + " ---: |" * len(columns)]
        for name, phase in names:
            cells = []
            for doc, run in columns:
                found = [l for l in run.get("layers", []) if l["name"] == name and l["phase"] == phase]
                cells.append(f"{found[0]['gflops']:.2f}" if found else "-")
            lines.append(f"| {md(name)} {phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def svg(docs):
    bars = [(column(doc, run), run["images_per_s"]) for doc in docs for run in doc["runs"]]
    width, bar_h, gap, left = 760, 22, 8, 260
    height = 40 + len(bars) * (bar_h + gap)
    top = max(v for _, v in bars) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20">images/s ({escape(docs[0]["model"])}, {escape(docs[0]["mode"])})</text>']
    for i, (name, value) in enumerate(bars):
        y = 30 + i * (bar_h + gap)
        w = (width - left - 80) * value / top
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#4a7ab5"/>')
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + 15}">{value:.1f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    files, md_path, svg_path = [], None, None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a in ("--markdown", "--svg"):
            if i + 1 >= len(argv):
                fail(f"{a} needs a file name")
            if a == "--markdown":
                md_path = argv[i + 1]
            else:
                svg_path = argv[i + 1]
            i += 2
            continue
        if a.startswith("--"):
            fail(f"unknown option {a} (see --help)")
        files.append(a)
        i += 1
    if not files:
        fail("give one or more bench --json files (see --help)")
    docs = [load(f) for f in files]
    table = markdown(docs)
    if md_path:
        with open(md_path, "w", encoding="utf-8") as f:
            f.write(table)
    else:
        sys.stdout.write(table)
    if svg_path:
        with open(svg_path, "w", encoding="utf-8") as f:
            f.write(svg(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
