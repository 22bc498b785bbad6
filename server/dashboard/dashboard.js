// Shared by every page: the token (sessionStorage, sent as a bearer header by fetch),
// the API, the login form, small DOM and number helpers, and the polling loop.
'use strict';

const PD = (() => {
  const KEY = 'prelude-token';

  // A link may carry the token in its fragment (#token=...), which never reaches the
  // server: it is moved into sessionStorage and out of the address bar.
  function takeFragmentToken() {
    const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
    if (!m) return;
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem(KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      // no-cache: always asked again; an unchanged answer comes back as a bodiless 304.
      res = await fetch(path, {headers, cache: 'no-cache'});
    } catch (e) {
      throw new ApiError(0, 'UNAVAILABLE', 'cannot reach the coordinator (' + e.message + ')');
    }
    if (res.ok) return res.json();
    let err = {code: String(res.status), message: res.statusText};
    try {
      const body = await res.json();
      if (body && body.error) err = body.error;
    } catch (e) { /* not JSON: keep the status line */ }
    throw new ApiError(res.status, err.code, err.message);
  }

  // A download of the API (a model): fetched with the token, then saved from a blob.
  async function download(path, fallbackName) {
    const headers = {};
    const token = sessionStorage.getItem(KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, {headers});
    if (!res.ok) {
      let message = res.statusText;
      try { message = (await res.json()).error.message; } catch (e) { /* keep the status line */ }
      throw new ApiError(res.status, '', message);
    }
    const cd = res.headers.get('Content-Disposition') || '';
    const m = cd.match(/filename="([^"]+)"/);
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', {href: url, download: m ? m[1] : fallbackName});
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // el('td', {class: 'num', 'data-value': 3}, 'text', child...): text is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  const $ = (sel) => document.querySelector(sel);

  function fixed(v, digits) {
    return v === undefined || v === null || Number.isNaN(v) ? '–' : Number(v).toFixed(digits);
  }
  // Six significant digits at most: 0.01, 5e-05, 1234.5.
  function compact(v) {
    if (v === undefined || v === null) return '–';
    return String(Number(Number(v).toPrecision(6)));
  }
  function time(ts) {
    if (!ts) return '–';
    const d = new Date(ts);
    return d.toLocaleString();
  }
  const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
  function isFinal(state) { return FINAL.has(state); }

  // A training event's kind ("STEP", ...): the enum, or the name events stored before it carry.
  function kind(t) { return t.kind || (t.event ? t.event.toUpperCase() : ''); }

  // Step / total, or the steps of a finished job.
  function progress(job) {
    const p = job.progress || {};
    const step = p.step || (job.latestMetrics && (job.latestMetrics.steps || job.latestMetrics.step)) || 0;
    const total = p.totalSteps || 0;
    return {step, total, fraction: total > 0 ? Math.min(1, step / total) : (job.state === 'SUCCEEDED' ? 1 : 0)};
  }
  function progressCell(job) {
    const p = progress(job);
    const fill = el('span');
    fill.style.width = (100 * p.fraction).toFixed(1) + '%';  // CSSOM: the style policy forbids style attributes
    const bar = el('span', {class: 'bar'}, fill);
    return el('td', {class: 'progress', 'data-step': p.step, 'data-total': p.total}, bar,
              p.total ? `${p.step}/${p.total}` : (p.step ? String(p.step) : '–'));
  }
  // The test accuracy the job has: its latest epoch's or summary's.
  function accuracy(job) {
    const m = job.latestMetrics || {};
    return m.testAccuracy;
  }
  // Images per second: the latest step's while it runs, else the summary's (after the
  // warm-up steps; none for a job that did not finish).
  function imagesPerSecond(job) {
    if (job.state === 'RUNNING') return (job.progress || {}).imagesPerSecond;
    return (job.latestMetrics || {}).trainImagesPerSecond;
  }
  function numCell(v, digits, cls) {
    return el('td', {class: 'num ' + (cls || ''), 'data-value': v === undefined ? null : v}, fixed(v, digits));
  }
  function stateBadge(state) { return el('span', {class: 'state s-' + (state || 'UNKNOWN')}, state || '?'); }

  function showError(message) {
    const box = $('#error');
    box.textContent = message;
    box.hidden = !message;
  }

  // Runs `tick` now and then every `ms` while it returns true; an error is shown and
  // retried (a coordinator restarting comes back), except a refused token: the login.
  function poll(tick, ms) {
    let timer = null;
    const run = async () => {
      timer = null;
      let again = true;
      try {
        again = await tick();
        showError('');
      } catch (e) {
        if (e.status === 401) { login(e.message); return; }
        showError(e.message);
        if (e.status === 404 || e.status === 400 || e.status === 403) return;  // it will not get better
      }
      if (again) timer = setTimeout(run, ms);
    };
    run();
    return () => { if (timer) clearTimeout(timer); };
  }

  function login(message) {
    $('#content').hidden = true;
    $('#login').hidden = false;
    showError(message || '');
    $('#token').focus();
  }

  function renderWho(me) {
    const who = $('#who');
    who.replaceChildren(el('span', {class: 'muted'}, me.name + ' (' + me.role + ')'));
    if (sessionStorage.getItem(KEY)) {
      const out = el('button', {type: 'button', class: 'link'}, 'Sign out');
      out.addEventListener('click', () => { sessionStorage.removeItem(KEY); location.reload(); });
      who.append(' ', out);
    }
  }

  // Checks the token (if any) and starts the page; shows the login form when one is needed.
  async function start(page) {
    takeFragmentToken();
    $('#login').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $('#token').value.trim());
      $('#token').value = '';
      start2(page);
    });
    start2(page);
  }
  async function start2(page) {
    try {
      const me = await api('/api/whoami');
      renderWho(me);
      $('#login').hidden = true;
      $('#content').hidden = false;
      showError('');
      page(me);
    } catch (e) {
      if (e.status === 401) login(sessionStorage.getItem(KEY) ? e.message : '');
      else showError(e.message);
    }
  }

  function param(name) { return new URLSearchParams(location.search).get(name) || ''; }

  return {api, download, el, $, fixed, compact, time, isFinal, kind, progress, progressCell, accuracy,
          imagesPerSecond, numCell, stateBadge, showError, poll, start, param, ApiError};
})();
