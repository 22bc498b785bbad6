// Small SVG charts drawn here, without a library: lines (linear or log y) and box plots.
// Each chart says on its <svg> how many points it drew (data-points), for tests.
'use strict';

const PDChart = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 480, H = 250, M = {left: 58, right: 12, top: 10, bottom: 44};
  const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf',
                   '#7f7f7f', '#bcbd22'];

  function node(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    const a = Math.abs(v);
    if (v === 0) return '0';
    if (a >= 1e5 || a < 1e-3) return v.toExponential(0);
    return String(Number(v.toPrecision(3)));
  }
  // About n round ticks over [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
    return out;
  }

  // Ticks of a log axis over [10^l0, 10^l1]: powers of ten, with 2 and 5 between them over a
  // few decades, and plain round numbers within one decade.
  function logTicks(l0, l1) {
    const out = [];
    const mults = l1 - l0 > 6 ? [1] : l1 - l0 > 2.5 ? [1, 3] : [1, 2, 5];
    const every = Math.max(1, Math.ceil((l1 - l0) / 6));  // decades between ticks
    for (let k = Math.floor(l0); k <= Math.ceil(l1); k += every)
      for (const m of mults) {
        const v = m * Math.pow(10, k), l = Math.log10(v);
        if (l >= l0 && l <= l1) out.push(Number(v.toPrecision(6)));
      }
    if (out.length >= 2) return out;
    return ticks(Math.pow(10, l0), Math.pow(10, l1), 4).filter((t) => t > 0);
  }

  function frame(svg, xs, ys, opts) {
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
    svg.replaceChildren();
    const log = !!opts.logY;
    const fy = log ? (v) => Math.log10(v) : (v) => v;
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    let yv = ys.filter((v) => Number.isFinite(v) && (!log || v > 0)).map(fy);
    let y0 = Math.min(...yv), y1 = Math.max(...yv);
    if (opts.yMin !== undefined && !log) y0 = Math.min(y0, opts.yMin);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (opts.xPad) { x0 -= opts.xPad; x1 += opts.xPad; }
    if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    const sx = (x) => M.left + (x - x0) / (x1 - x0) * (W - M.left - M.right);
    const sy = (y) => H - M.bottom - (fy(y) - y0) / (y1 - y0) * (H - M.top - M.bottom);
    const axes = node('g', {class: 'axes'});
    axes.append(node('line', {x1: M.left, y1: H - M.bottom, x2: W - M.right, y2: H - M.bottom}));
    axes.append(node('line', {x1: M.left, y1: M.top, x2: M.left, y2: H - M.bottom}));
    const yt = log ? logTicks(y0, y1) : ticks(y0, y1, 5);
    for (const t of yt) {
      const y = sy(t);
      axes.append(node('line', {class: 'grid', x1: M.left, y1: y, x2: W - M.right, y2: y}));
      axes.append(node('text', {x: M.left - 4, y: y + 4, 'text-anchor': 'end'}, fmt(t)));
    }
    if (opts.xLabels) {
      const every = Math.ceil(opts.xLabels.length / 12);
      opts.xLabels.forEach((label, i) => {
        if (i % every) return;
        axes.append(node('text', {x: sx(i), y: H - M.bottom + 14, 'text-anchor': 'middle'}, label));
      });
    } else {
      for (const t of ticks(x0, x1, 5).filter((t) => !opts.integerX || Number.isInteger(t)))
        axes.append(node('text', {x: sx(t), y: H - M.bottom + 14, 'text-anchor': 'middle'}, fmt(t)));
    }
    if (opts.xTitle) axes.append(node('text', {class: 'title', x: (M.left + W - M.right) / 2, y: H - 4,
                                               'text-anchor': 'middle'}, opts.xTitle));
    svg.append(axes);
    return {sx, sy, log};
  }

  function empty(svg, message) {
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren(node('text', {class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle'}, message));
    svg.dataset.points = '0';
  }

  function legend(svg, series) {
    const shown = series.filter((s) => s.name && s.points.length);
    if (shown.length > 12) return;
    const g = node('g', {class: 'legend'});
    shown.forEach((s, i) => {
      const y = M.top + 8 + i * 13;
      g.append(node('line', {x1: W - M.right - 150, y1: y - 4, x2: W - M.right - 134, y2: y - 4, stroke: s.color,
                             'stroke-dasharray': s.dash ? '4 3' : 'none'}));
      g.append(node('text', {x: W - M.right - 130, y}, s.name.length > 28 ? s.name.slice(0, 27) + '…' : s.name));
    });
    svg.append(g);
  }

  // series: [{name, color, points: [[x, y], ...], dash, markers}]; opts: logY, xLabels, xTitle, yMin.
  function line(svg, series, opts) {
    opts = opts || {};
    series.forEach((s, i) => { s.color = s.color || PALETTE[i % PALETTE.length]; });
    const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]) && (!opts.logY || p[1] > 0));
    if (!pts.length) return empty(svg, opts.emptyText || 'no data yet');
    const {sx, sy} = frame(svg, pts.map((p) => p[0]), pts.map((p) => p[1]), opts);
    for (const s of series) {
      const ok = s.points.filter((p) => Number.isFinite(p[1]) && (!opts.logY || p[1] > 0));
      if (!ok.length) continue;
      const d = ok.map((p, i) => (i ? 'L' : 'M') + sx(p[0]).toFixed(1) + ' ' + sy(p[1]).toFixed(1)).join('');
      svg.append(node('path', {class: 'series', d, stroke: s.color, 'stroke-dasharray': s.dash ? '4 3' : 'none',
                               'data-name': s.name || ''}));
      if (s.markers || ok.length === 1)
        for (const p of ok) svg.append(node('circle', {cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: s.color}));
    }
    legend(svg, series);
    svg.dataset.points = String(pts.length);
  }

  // boxes: [{x, min, q1, median, q3, max}] over x; a median line joins them.
  function boxes(svg, boxes, opts) {
    opts = opts || {};
    if (!boxes.length) return empty(svg, opts.emptyText || 'no data yet');
    // Half a step of room at each end, so that no box sits on an axis.
    const {sx, sy} = frame(svg, boxes.map((b) => b.x), boxes.flatMap((b) => [b.min, b.max]),
                           Object.assign({xPad: 0.5, integerX: true}, opts));
    const span = boxes.length > 1 ? (sx(boxes[1].x) - sx(boxes[0].x)) : 40;
    const w = Math.max(3, Math.min(24, span * 0.5));
    const color = opts.color || PALETTE[0];
    for (const b of boxes) {
      const x = sx(b.x);
      svg.append(node('line', {class: 'whisker', x1: x, y1: sy(b.min), x2: x, y2: sy(b.max), stroke: color}));
      svg.append(node('rect', {x: x - w / 2, y: sy(b.q3), width: w, height: Math.max(1, sy(b.q1) - sy(b.q3)),
                               fill: color, 'fill-opacity': 0.3, stroke: color}));
      svg.append(node('line', {x1: x - w / 2, y1: sy(b.median), x2: x + w / 2, y2: sy(b.median), stroke: color,
                               'stroke-width': 2}));
    }
    const d = boxes.map((b, i) => (i ? 'L' : 'M') + sx(b.x).toFixed(1) + ' ' + sy(b.median).toFixed(1)).join('');
    svg.append(node('path', {class: 'series', d, stroke: color}));
    svg.dataset.points = String(boxes.length);
  }

  // min, quartiles (linear interpolation) and max of the values.
  function quartiles(values) {
    const v = [...values].sort((a, b) => a - b);
    const q = (p) => {
      const at = p * (v.length - 1), lo = Math.floor(at), hi = Math.ceil(at);
      return v[lo] + (v[hi] - v[lo]) * (at - lo);
    };
    return {min: v[0], q1: q(0.25), median: q(0.5), q3: q(0.75), max: v[v.length - 1]};
  }

  // Light to dark, for lines that follow one another in time (epochs).
  function ramp(i, n) {
    const t = n <= 1 ? 1 : i / (n - 1);
    const l = 75 - 45 * t;
    return `hsl(215, 70%, ${l}%)`;
  }

  return {line, boxes, quartiles, ramp, PALETTE};
})();
