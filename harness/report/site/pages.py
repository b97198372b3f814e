"""The site's HTML: the index (dense versus sparse and the chart side by side on the first screen, then the
results table in its own scrolling box, claims, study reports) and a page a system. Every value from a record, a
system description, a claim or a file name goes through `esc`; the pages load nothing from outside their own
folder, and the table is complete without JavaScript (which only sorts and filters)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

CSS = """
[hidden]{display:none !important}
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 1em 3em;color:#222}
h1{font-size:1.5em}h2{margin-top:1.8em}table{border-collapse:collapse;font-size:.86em;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}thead th{background:#f3f3f3}
th button{all:unset;cursor:pointer;font-weight:bold}th button:focus-visible,a:focus-visible,select:focus-visible,
input:focus-visible{outline:2px solid #0050d0;outline-offset:2px}td.n{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:.85em;white-space:nowrap}
.measured{background:#d7f0d7}.modelled{background:#fde2c4}.partly-modelled{background:#fff1b8}
.synthetic{background:#e4e4e4}
.incomplete{background:#f8c9c9}.mixed-methods{background:#e3dcf5}.pass{color:#176b17}.fail{color:#a30000}.not-checked{color:#666}
form{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;margin:.6em 0}label{white-space:nowrap}
select{max-width:100%}.wrap{overflow-x:auto}img{max-width:100%;height:auto}.muted{color:#666;font-size:.9em}
.nw{white-space:nowrap}code{font-size:.92em}
.first{display:grid;grid-template-columns:minmax(0,9fr) minmax(0,11fr);gap:0 1.5em;align-items:start}
.first h2{margin-top:.6em}.first p{margin:.4em 0 .6em}.first svg{display:block;width:100%;height:auto}
.box{overflow:auto;max-height:75vh;border:1px solid #ccc}.first .box{max-height:60vh}
.first td .muted{font-size:.85em}
.box table{border-collapse:separate;border-spacing:0}.box th,.box td{border-width:0 1px 1px 0}
.box th:last-child,.box td:last-child{border-right:0}.box tbody tr:last-child td{border-bottom:0}
.box thead th{position:sticky;top:0;z-index:2}
#results-table td:first-child,#results-table th:first-child{position:sticky;left:0;z-index:1;background:#fff;
min-width:9em}#results-table td:not(.n){min-width:7em}
#results-table thead th:first-child{z-index:3;background:#f3f3f3}
@media (max-width:1000px){.first{grid-template-columns:minmax(0,1fr)}}
@media (max-width:700px){body{padding:0 .4em}table{font-size:.78em}#results-table td:first-child{min-width:6em}}
"""

JS = """
(function () {
  var table = document.getElementById('results-table');
  if (!table) return;
  var body = table.tBodies[0], heads = table.tHead.rows[0].cells, order = {col: -1, asc: true};
  function key(row, i) {
    var cell = row.cells[i], v = cell.getAttribute('data-v');
    if (v === '') return null;
    if (v !== null && !isNaN(Number(v))) return Number(v);
    return cell.textContent.trim().toLowerCase();
  }
  function sortBy(i) {
    order.asc = order.col === i ? !order.asc : true;
    order.col = i;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
      return order.asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var j = 0; j < heads.length; j++)
      heads[j].setAttribute('aria-sort', j === i ? (order.asc ? 'ascending' : 'descending') : 'none');
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    var b = th.querySelector('button');
    if (b) b.addEventListener('click', function () { sortBy(i); });
  });
  var form = document.getElementById('filters');
  function apply() {
    var w = form.workload.value, a = form.accelerator.value, f = form.framework.value;
    var m = form.measured.checked, q = form.q.value.trim().toLowerCase(), shown = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var d = r.dataset, ok = (!w || d.workload === w) && (!a || d.accelerator === a) && (!f || d.framework === f)
        && (!m || d.method === 'measured') && (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = shown + ' of ' + body.rows.length + ' rows shown';
  }
  form.addEventListener('input', apply);
  form.addEventListener('change', apply);
  form.addEventListener('submit', function (e) { e.preventDefault(); });
  form.hidden = false;
})();
"""


def esc(value: Any) -> str:
    """Any value as HTML text (quotes too: safe inside an attribute)."""
    return escape("" if value is None else str(value), quote=True)


def fmt(x: float | None, spec: str | None = None) -> str:
    """A figure as people read it: 4 significant digits, thousands grouped, exponents only far from 1."""
    if x is None:
        return "—"
    if spec:
        return format(x, spec)
    if x != 0 and not 1e-3 <= abs(x) < 1e7:
        return f"{x:.3e}"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def page(title: str, body: Iterable[str], script: bool = False) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body)
            + (f"\n<script>{JS}</script>" if script else "") + "\n</body></html>\n")


def badge(method: str) -> str:
    return f'<span class="badge {esc(method.replace(" ", "-"))}">{esc(method)}</span>'


def cell(text: str, value: float | None = None, numeric: bool = False, raw: bool = False) -> str:
    """A table cell; numeric cells carry their value for sorting (empty: none, sorted last)."""
    content = text if raw else esc(text)
    if not numeric:
        return f"<td>{content}</td>"
    sort_value = "" if value is None else repr(float(value))
    return f'<td class="n" data-v="{sort_value}">{content}</td>'


def table(headers: Sequence[str], rows: Iterable[str], table_id: str | None = None, sortable: bool = False,
          box: bool = False) -> str:
    """A table in a wrapper that scrolls sideways when the table is wider than the page; with `box`, a box of its
    own height too (both ways, the header row staying in view), so that a long table never pushes what follows
    a screen away and the page never gets wider than the window."""
    sort = ' aria-sort="none"' if sortable else ""
    heads = "".join(f'<th scope="col"{sort}>' + (f'<button type="button">{esc(h)}</button>' if sortable else esc(h))
                    + "</th>" for h in headers)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<div class="{"wrap box" if box else "wrap"}"><table{ident}><thead><tr>{heads}</tr></thead><tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>")


def select(name: str, label: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in sorted(set(values)))
    return f'<label>{esc(label)} <select name="{esc(name)}"><option value="">all</option>{options}</select></label>'


def filters(workloads: Iterable[str], accelerators: Iterable[str], frameworks: Iterable[str]) -> str:
    """The filter form: hidden until the script shows it (without JavaScript it would do nothing)."""
    return ('<form id="filters" role="search" hidden>' + select("workload", "Workload", workloads)
            + select("accelerator", "Accelerator", accelerators) + select("framework", "Framework", frameworks)
            + '<label><input type="checkbox" name="measured"> measured energy only</label>'
            + '<label>Search <input type="search" name="q" placeholder="system, model, ..."></label></form>'
            + '<noscript><p class="muted">Sorting and filters need JavaScript; the table below is complete without it.'
              "</p></noscript>")


def listing(items: Iterable[str]) -> str:
    items = list(items)
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else "<p class=\"muted\">none</p>"
