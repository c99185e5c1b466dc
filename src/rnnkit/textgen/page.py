"""The hidden-state viewer's page: one self-contained HTML file (inline CSS and JavaScript, no
URL fetched) showing a text with each character coloured by a chosen unit's activation.

The page shows the text as one <span> per character (HTML-escaped), a unit picker whose first
entries are the units most correlated with each feature, a table of those units and their r,
and a colour legend: blue -1 .. white 0 .. red +1 for h. "Stretch" colours by the unit's own
range instead (-s .. +s, s its largest |activation| on the text), always on for an LSTM's c,
which is unbounded. Changing the unit re-colours the text in the page; hovering a character
shows its value. The activations travel in the page as 8-bit integers, unit by unit:
value = q / 127 * s[u].

Its script opens the unit given in the address as `page.html#unit=5`, then marks the body
`data-ready="1"`, keeps the unit shown in `data-unit` and writes any script error into
#errors and `data-errors`, so a headless browser can check it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import torch

from rnnkit.data.files import write_atomically
from rnnkit.textgen.inspect import TOP, Inspection


def render_page(inspection: Inspection, *, source: str = "", top: int = TOP) -> str:
    """The page as a string; `source` (e.g. the checkpoint and its step) heads it."""
    ins = inspection
    n, units = ins.activations.shape
    tops = {name: ins.top(name, top) for name in ins.r}
    best = max((pair for pairs in tops.values() for pair in pairs), key=lambda p: abs(p[1]))
    scales, codes = _quantise(ins.activations)
    data = {
        "n": n,
        "units": units,
        "state": ins.state,
        "scales": [float(f"{s:.6g}") for s in scales.tolist()],
        "q": base64.b64encode(codes.numpy().tobytes()).decode("ascii"),
        "initial": best[0],
    }
    shown = f"{n:,} characters" + (
        f" (the first {n:,} of {ins.total_chars:,})" if ins.total_chars > n else ""
    )
    unknown = int(ins.unknown.sum())
    if unknown:
        shown += f"; {unknown:,} not in the vocabulary (read as &lt;unk&gt;, underlined)"
    about = f"{ins.layers} x {units} {ins.cell}, layer {ins.layer} (from 0) of {ins.layers}, "
    about += f"state {ins.state}; {shown}"
    heading = f"Hidden units of {source}" if source else "Hidden units"
    fields = {
        "title": html.escape(heading),
        "about": about,
        "options": _options(tops, units),
        "tables": "\n".join(_table(name, pairs) for name, pairs in tops.items()),
        "stretched": " checked disabled" if ins.state == "c" else "",
        "state": ins.state,
        "text": _spans(ins.text, ins.unknown.tolist()),
        "data": json.dumps(data).replace("</", "<\\/"),
        "script": SCRIPT,
        "style": STYLE,
    }
    # one pass: a "{{...}}" in the text itself is never replaced
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fields[m.group(1)], TEMPLATE)


def write_page(path: str | Path, inspection: Inspection, **options) -> Path:
    """`render_page(inspection, **options)` written to `path` atomically (a temporary file
    beside it, then renamed), so a page is never left half-written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name for the page, e.g. page.html")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} does not exist; create it or write the page elsewhere")
    write_atomically(path, render_page(inspection, **options))
    return path


def _quantise(activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale (H,), codes (H, N) int8): activations (N, H) ~= codes.T / 127 * scale."""
    scale = activations.abs().amax(0)  # (H,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = (activations / scale * 127).round().clamp(-127, 127).to(torch.int8)  # (N, H)
    return scale, codes.T.contiguous()  # unit by unit


def _spans(text: str, unknown: list[bool]) -> str:
    """One <span> per character, so the script can colour character i as child i. A carriage
    return shows as nothing: HTML would read it as a second line break after \\r\\n."""
    parts = []
    for ch, unk in zip(text, unknown):
        shown = "" if ch == "\r" else html.escape(ch)
        parts.append(f'<span class="unk">{shown}</span>' if unk else f"<span>{shown}</span>")
    return "".join(parts)


def _options(tops: dict[str, list[tuple[int, float]]], units: int) -> str:
    groups = []
    for name, pairs in tops.items():
        rows = "".join(f'<option value="{u}">unit {u} (r = {r:+.2f})</option>' for u, r in pairs)
        groups.append(f'<optgroup label="{html.escape(name)}: top |r|">{rows}</optgroup>')
    rows = "".join(f'<option value="{u}">unit {u}</option>' for u in range(units))
    groups.append(f'<optgroup label="all units">{rows}</optgroup>')
    return "\n".join(groups)


def _table(name: str, pairs: list[tuple[int, float]]) -> str:
    rows = "".join(
        f'<tr data-unit="{u}" tabindex="0"><td>{u}</td><td class="r">{r:+.3f}</td>'
        f'<td><span class="bar" style="width:{abs(r) * 60:.0f}px;background:'
        f'{"#b2182b" if r > 0 else "#2166ac"}"></span></td></tr>'
        for u, r in pairs
    )
    return (
        f'<table class="corr"><caption>{html.escape(name)}</caption>'
        f"<thead><tr><th>unit</th><th>r</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 18px; background: #fff; border-bottom: 1px solid #ddd; }
header h1 { font-size: 18px; margin: 0 0 4px; }
header p { margin: 0; font-size: 13px; color: #555; }
main { display: flex; gap: 18px; padding: 14px 18px; align-items: flex-start; }
#text { flex: 1; min-width: 0; margin: 0; padding: 12px; background: #fff;
  border: 1px solid #ddd; font: 14px/1.55 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas,
  monospace; white-space: pre-wrap; word-break: break-all; tab-size: 4; }
#text span.unk { text-decoration: underline dotted #000; }
#text span:hover { outline: 1px solid #000; }
aside { width: 330px; flex: none; position: sticky; top: 10px; font-size: 13px; }
aside section { background: #fff; border: 1px solid #ddd; padding: 10px; margin-bottom: 12px; }
label { font-weight: 600; }
label.plain { font-weight: normal; display: block; margin-top: 8px; }
table.corr td:first-child, table.corr th:first-child { width: 44px; }
table.corr td.r, table.corr th:nth-child(2) { width: 64px; }
select { width: 100%; margin-top: 4px; font-size: 13px; }
.legend { display: flex; align-items: center; gap: 6px; margin-top: 10px; }
.ramp { flex: 1; height: 12px; border: 1px solid #bbb;
  background: linear-gradient(to right, rgb(33,102,172), #fff, rgb(178,24,43)); }
#readout { margin-top: 8px; min-height: 1.3em; font-family: ui-monospace, monospace; }
table.corr { border-collapse: collapse; width: 100%; margin-bottom: 10px; }
table.corr caption { text-align: left; font-weight: 600; padding: 2px 0; }
table.corr th, table.corr td { padding: 1px 6px; text-align: left; }
table.corr th { color: #666; font-weight: normal; border-bottom: 1px solid #ddd; }
table.corr td.r { font-family: ui-monospace, monospace; }
table.corr tbody tr { cursor: pointer; }
table.corr tbody tr:hover { background: #eef; }
table.corr tbody tr.on { background: #ffe9a8; }
.bar { display: inline-block; height: 9px; }
#errors { color: #b00; white-space: pre-wrap; margin: 0 18px; }
#errors:empty { display: none; }
"""

SCRIPT = """
"use strict";
function reportError(message) {
  const box = document.getElementById("errors");
  box.textContent += message + "\\n";
  document.body.dataset.errors = (+(document.body.dataset.errors || 0) + 1).toString();
}
window.onerror = function (message, source, line) {
  reportError("script error: " + message + " (line " + line + ")");
};
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const n = data.n;
  const bytes = atob(data.q);
  const q = new Int8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) q[i] = (bytes.charCodeAt(i) << 24) >> 24;
  const spans = document.getElementById("text").children;
  const select = document.getElementById("unit");
  const readout = document.getElementById("readout");
  const stretch = document.getElementById("stretch");
  const rows = document.querySelectorAll("tr[data-unit]");
  const BLUE = [33, 102, 172], RED = [178, 24, 43];
  let unit = data.initial;

  function value(u, i) { return (q[u * n + i] / 127) * data.scales[u]; }
  function shade(v) {  // v in [-1, 1] -> white .. red (v > 0) or white .. blue (v < 0)
    const end = v > 0 ? RED : BLUE, a = Math.min(Math.abs(v), 1);
    const c = end.map(function (e) { return Math.round(255 + (e - 255) * a); });
    return "rgb(" + c.join(", ") + ")";
  }
  function show(u) {
    unit = u;
    const range = stretch.checked ? data.scales[u] : 1;
    for (let i = 0; i < n; i++) {
      const v = value(u, i) / range;
      spans[i].style.backgroundColor = shade(v);
      spans[i].style.color = Math.abs(v) > 0.6 ? "#fff" : "";
    }
    rows.forEach(function (row) { row.classList.toggle("on", +row.dataset.unit === u); });
    document.getElementById("lo").textContent = (-range).toPrecision(2);
    document.getElementById("hi").textContent = "+" + range.toPrecision(2);
    document.body.dataset.unit = String(u);
  }
  function pick(u) {  // as a person choosing unit u in the picker
    select.value = String(u);
    select.dispatchEvent(new Event("change"));
  }
  function fromAddress() {
    const m = /unit=(\\d+)/.exec(location.hash);
    if (m && +m[1] < data.units) pick(+m[1]);
  }
  select.addEventListener("change", function () { show(+select.value); });
  stretch.addEventListener("change", function () { show(unit); });
  rows.forEach(function (row) {
    row.addEventListener("click", function () { pick(+row.dataset.unit); });
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter") pick(+row.dataset.unit);
    });
  });
  document.getElementById("text").addEventListener("mouseover", function (e) {
    const i = Array.prototype.indexOf.call(spans, e.target);
    if (i < 0) return;
    const ch = JSON.stringify(e.target.textContent || "\\r");
    readout.textContent = "char " + i + " " + ch + ": " + data.state + " = " +
      value(unit, i).toFixed(3);
  });
  window.addEventListener("hashchange", fromAddress);
  pick(unit);
  fromAddress();
  document.body.dataset.ready = "1";
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}}</title>
<style>{{style}}</style>
</head>
<body>
<header>
<h1>{{title}}</h1>
<p>{{about}}. Colour: the unit's activation after reading each character.</p>
</header>
<pre id="errors"></pre>
<main>
<pre id="text">{{text}}</pre>
<aside>
<section>
<label for="unit">Unit</label>
<select id="unit">{{options}}</select>
<div class="legend">
<span id="lo">-1</span><span class="ramp"></span><span id="hi">+1</span>
</div>
<label class="plain"><input type="checkbox" id="stretch"{{stretched}}>
stretch the colours to the unit's largest |{{state}}|</label>
<div id="readout">hover a character for its value</div>
</section>
<section>
<div style="margin-bottom:6px">Units most correlated with features of the text
(Pearson r; click a row to show the unit):</div>
{{tables}}
</section>
</aside>
</main>
<script type="application/json" id="data">{{data}}</script>
<script>{{script}}</script>
</body>
</html>
"""
