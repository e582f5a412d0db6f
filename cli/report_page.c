/*
 * The fixed parts of the HTML report: its CSS, and the script that draws the
 * timeline and the weekly SLO chart as inline SVG from the JSON data in
 * <script id="cv-data">. When it has drawn, the script sets
 * body[data-rendered="ok"] and fills #cv-status; any script error lands in
 * #cv-errors and sets data-rendered="error", so a headless browser's DOM dump
 * shows whether the page worked.
 */
#include "cli.h"

static const char page_css[] =
	"<style>\n"
	"body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }\n"
	"h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }\n"
	".meta, .legend { color: #57606a; }\n"
	".chart svg { display: block; max-width: 100%; }\n"
	".chart text { font: 12px system-ui, sans-serif; fill: #1b1f24; }\n"
	".chart .axis { stroke: #d0d7de; } .chart .muted { fill: #57606a; }\n"
	"#cv-errors { color: #c62828; white-space: pre-wrap; margin: 0; }\n"
	"table { border-collapse: collapse; } th, td { padding: 3px 8px; border-bottom: 1px solid #d0d7de; text-align: left; }\n"
	"tr.success td:nth-child(6) { color: #2e7d32; } tr.good td:nth-child(6) { color: #b26a00; }\n"
	"tr.bad td:nth-child(6) { color: #c62828; font-weight: bold; }\n"
	".sw { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }\n"
	".sw.success { background: #2e7d32; } .sw.good { background: #f9a825; } .sw.bad { background: #c62828; }\n"
	".sw.active { background: #1565c0; } .sw.paused { background: #8e24aa; }\n"
	"#cv-status { color: #57606a; font-size: 12px; }\n"
	"</style>\n";

static const char page_script[] =
	"<script>\n"
	"(function () {\n"
	"  'use strict';\n"
	"  var SVG = 'http://www.w3.org/2000/svg';\n"
	"  var COLORS = { success: '#2e7d32', 'good failure': '#f9a825', 'bad failure': '#c62828',\n"
	"                 running: '#1565c0', paused: '#8e24aa' };\n"
	"  function fail(message) {\n"
	"    document.getElementById('cv-errors').textContent += 'script error: ' + message + '\\n';\n"
	"    document.body.setAttribute('data-rendered', 'error');\n"
	"  }\n"
	"  window.addEventListener('error', function (e) { fail(e.message); });\n"
	"  function el(name, attrs, parent, text) {\n"
	"    var node = document.createElementNS(SVG, name);\n"
	"    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });\n"
	"    if (text !== undefined) { node.textContent = text; }\n"
	"    if (parent) { parent.appendChild(node); }\n"
	"    return node;\n"
	"  }\n"
	"  function titled(node, text) { el('title', {}, node, text); return node; }\n"
	"  function pushColor(p) { return COLORS[p.outcome || p.state] || '#57606a'; }\n"
	"  function phaseColor(ph) {\n"
	"    return { succeeded: '#2e7d32', skipped: '#9e9e9e', failed: '#c62828', running: '#1565c0' }[ph.state] || '#bdbdbd';\n"
	"  }\n"
	"  function when(ms, fine) { return new Date(ms).toISOString().replace('T', ' ').slice(0, fine ? 19 : 16); }\n"
	"  function timeline(data, box) {\n"
	"    var pushes = data.pushes, W = 1000, LABEL = 230, ROW = 24, TOP = 28;\n"
	"    if (pushes.length === 0) { box.textContent = 'No pushes started in the last ' + data.days + ' days.'; return; }\n"
	"    var t0 = Infinity, t1 = -Infinity;\n"
	"    pushes.forEach(function (p) {\n"
	"      t0 = Math.min(t0, p.start); t1 = Math.max(t1, p.end === null ? data.generated_at : p.end);\n"
	"    });\n"
	"    if (t1 <= t0) { t1 = t0 + 1000; }\n"
	"    var span = t1 - t0, plotW = W - LABEL - 16;\n"
	"    function x(t) { return LABEL + (t - t0) / span * plotW; }\n"
	"    var svg = el('svg', { width: W, height: TOP + pushes.length * ROW + 8, viewBox: '0 0 ' + W + ' ' + (TOP + pushes.length * ROW + 8),\n"
	"                          role: 'img', 'aria-label': 'timeline of recent pushes' }, box);\n"
	"    for (var i = 0; i <= 4; i++) {\n"
	"      var tx = x(t0 + span * i / 4);\n"
	"      el('line', { x1: tx, x2: tx, y1: TOP - 6, y2: TOP + pushes.length * ROW, 'class': 'axis' }, svg);\n"
	"      el('text', { x: tx, y: 14, 'text-anchor': i === 0 ? 'start' : (i === 4 ? 'end' : 'middle'), 'class': 'muted' }, svg,\n"
	"         when(t0 + span * i / 4, span < 3600000));\n"
	"    }\n"
	"    pushes.forEach(function (p, row) {\n"
	"      var y = TOP + row * ROW, end = p.end === null ? data.generated_at : p.end;\n"
	"      var g = el('g', { 'class': 'push', 'data-push': p.id }, svg);\n"
	"      titled(g, 'push ' + p.id + ' ' + p.service + ' ' + p.version + ': ' + p.state +\n"
	"             (p.outcome ? ' (' + p.outcome + ')' : '') + (p.reason ? ': ' + p.reason : ''));\n"
	"      el('text', { x: 0, y: y + 15 }, g, '#' + p.id + ' ' + p.service + ' ' + p.version + (p.kind === 'revert' ? ' (revert)' : ''));\n"
	"      el('rect', { x: x(p.start), y: y + 3, width: Math.max(2, x(end) - x(p.start)), height: ROW - 6, rx: 3,\n"
	"                   fill: '#f6f8fa', stroke: pushColor(p), 'stroke-width': 2 }, g);\n"
	"      p.phases.forEach(function (ph) {\n"
	"        var s = ph.start, u = ph.updates_done === null ? (ph.end === null ? end : ph.end) : ph.updates_done;\n"
	"        var e = ph.end === null ? end : ph.end, c = phaseColor(ph);\n"
	"        var seg = el('g', { 'class': 'phase' }, g);\n"
	"        titled(seg, 'phase ' + ph.phase + ' ' + ph.scope + ' ' + ph.amount + ': ' + ph.state +\n"
	"               (ph.targets === null ? '' : ', ' + ph.updated + '/' + ph.targets + ' updated'));\n"
	"        el('rect', { x: x(s), y: y + 6, width: Math.max(1, x(u) - x(s)), height: ROW - 12, fill: c }, seg);\n"
	"        if (e > u) {\n"
	"          el('rect', { x: x(u), y: y + 6, width: Math.max(1, x(e) - x(u)), height: ROW - 12, fill: c, 'fill-opacity': 0.35 }, seg);\n"
	"        }\n"
	"      });\n"
	"    });\n"
	"  }\n"
	"  function slo(data, box) {\n"
	"    var weeks = data.slo, W = 1000, H = 260, LEFT = 48, TOP = 28, BARS = 150, LINE = 50;\n"
	"    if (weeks.length === 0) { box.textContent = 'No pushes have ended yet.'; return; }\n"
	"    var max = 1, low = 0.99;\n"
	"    weeks.forEach(function (w) { max = Math.max(max, w.pushes); low = Math.min(low, Number(w.good_share)); });\n"
	"    var svg = el('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'weekly SLO' }, box);\n"
	"    var step = (W - LEFT - 16) / weeks.length, bw = Math.min(60, step * 0.6);\n"
	"    el('line', { x1: LEFT, x2: W - 16, y1: TOP + BARS, y2: TOP + BARS, 'class': 'axis' }, svg);\n"
	"    el('text', { x: 0, y: TOP + 10, 'class': 'muted' }, svg, max + ' pushes');\n"
	"    var lineTop = TOP + BARS + 24;\n"
	"    function ly(share) { return lineTop + (1 - (share - low) / (1 - low || 1)) * LINE; }\n"
	"    var ty = ly(0.999);\n"
	"    el('line', { x1: LEFT, x2: W - 16, y1: ty, y2: ty, stroke: '#c62828', 'stroke-dasharray': '4 3' }, svg);\n"
	"    el('text', { x: 0, y: ty + 4, 'class': 'muted' }, svg, '99.9%');\n"
	"    var points = [];\n"
	"    weeks.forEach(function (w, i) {\n"
	"      var cx = LEFT + step * i + step / 2, y = TOP + BARS;\n"
	"      var g = el('g', { 'class': 'week', 'data-week': w.week }, svg);\n"
	"      titled(g, 'week of ' + w.week + ': ' + w.pushes + ' pushes, ' + w.success + ' success, ' + w.good_failure +\n"
	"             ' good failure, ' + w.bad_failure + ' bad failure; ' + (Number(w.good_share) * 100).toFixed(2) + '% ended well');\n"
	"      [['success', '#2e7d32'], ['good_failure', '#f9a825'], ['bad_failure', '#c62828']].forEach(function (part) {\n"
	"        var h = w[part[0]] / max * BARS;\n"
	"        if (h > 0) { y -= h; el('rect', { x: cx - bw / 2, y: y, width: bw, height: h, fill: part[1] }, g); }\n"
	"      });\n"
	"      el('text', { x: cx, y: y - 4, 'text-anchor': 'middle', fill: w.met ? '#2e7d32' : '#c62828' }, g,\n"
	"         (Number(w.good_share) * 100).toFixed(1) + '%');\n"
	"      el('text', { x: cx, y: H - 4, 'text-anchor': 'middle', 'class': 'muted' }, g, w.week);\n"
	"      points.push(cx + ',' + ly(Number(w.good_share)));\n"
	"      el('circle', { cx: cx, cy: ly(Number(w.good_share)), r: 3, fill: w.met ? '#2e7d32' : '#c62828' }, g);\n"
	"    });\n"
	"    el('polyline', { points: points.join(' '), fill: 'none', stroke: '#1b1f24', 'stroke-width': 1 }, svg);\n"
	"  }\n"
	"  try {\n"
	"    var data = JSON.parse(document.getElementById('cv-data').textContent);\n"
	"    document.getElementById('cv-meta').textContent = data.pushes.length + ' pushes started in the last ' + data.days +\n"
	"      ' days, database ' + data.database + ', generated ' + data.generated;\n"
	"    timeline(data, document.getElementById('timeline'));\n"
	"    slo(data, document.getElementById('slo'));\n"
	"    document.getElementById('cv-status').textContent = 'drawn: ' + data.pushes.length + ' pushes, ' + data.slo.length + ' weeks';\n"
	"    if (document.body.getAttribute('data-rendered') !== 'error') { document.body.setAttribute('data-rendered', 'ok'); }\n"
	"  } catch (e) {\n"
	"    fail(e && e.message ? e.message : String(e));\n"
	"  }\n"
	"})();\n"
	"</script>\n";

/* The document up to <body>: doctype, charset, title, the inline CSS. */
void
report_write_page_head(FILE *out, const char *title)
{
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
			"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n", title);
	fputs(page_css, out);
	fputs("</head>\n", out);
}

/* The drawing script (after the data element it reads). */
void
report_write_page_script(FILE *out)
{
	fputs(page_script, out);
}
