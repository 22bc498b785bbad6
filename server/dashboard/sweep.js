// A sweep: the comparison table of `prelude compare` (from /api/sweeps/ID, computed by
// the same code), failures with their reasons, every job's curves overlaid (one color
// per grid point, seeds alike) and its jobs; refreshed every 2 s until all have ended.
'use strict';

(() => {
  const {api, el, $, fixed, compact, isFinal, kind, progressCell, accuracy, stateBadge, poll, param} = PD;
  const id = param('id');
  const MAX_CURVES = 100;  // jobs whose curves are drawn: a 1000-point sweep stays readable
  const curves = new Map();  // job id -> {last, ended, steps: [[step, loss]], tests: [[epoch, acc]]}

  const stat = (s, digits) => (s === null || s === undefined ? '–'
      : s.n > 1 ? `${fixed(s.mean, digits)} ± ${fixed(s.sd, digits)}` : fixed(s.mean, digits));
  const statCell = (s, digits, cls) =>
      el('td', {class: 'num ' + cls, 'data-value': s ? s.mean : null, 'data-n': s ? s.n : 0}, stat(s, digits));

  function renderTable(data) {
    const rows = data.rows.map((r) => el('tr', {'data-point': r.point},
        el('td', {}, r.point), el('td', {class: 'num ok'}, `${r.succeeded}/${r.jobs}`),
        statCell(r.test_accuracy, 4, 'acc'), statCell(r.test_loss, 4, 'loss'),
        statCell(r.images_per_second, 0, 'ips'),
        el('td', {class: 'slopes'}, Object.entries(r.slopes).map(([l, s]) => `${l}=${fixed(s.mean, 3)}`).join(' ') ||
                                    '–')));
    $('#compare tbody').replaceChildren(...rows);
    const failures = data.rows.flatMap((r) => r.failures.map((f) => el('li', {class: 'error-text'}, 'failed: ' + f)));
    $('#failures').replaceChildren(...failures);
  }

  function renderJobs(jobs) {
    const rows = jobs.map((job) => el('tr', {'data-job-id': job.jobId, 'data-state': job.state},
        el('td', {}, el('a', {href: '/job.html?id=' + encodeURIComponent(job.jobId)}, job.jobId)),
        el('td', {}, job.sweepPoint || ''), el('td', {}, stateBadge(job.state)), progressCell(job),
        PD.numCell(accuracy(job), 4, 'acc'),
        el('td', {class: 'error-text'}, job.state === 'QUEUED' ? (job.waitingReason || '') : (job.error || ''))));
    $('#jobs tbody').replaceChildren(...rows);
  }

  // New events of each job not yet ended.
  async function readCurves(jobs) {
    for (const job of jobs.slice(0, MAX_CURVES)) {
      let c = curves.get(job.jobId);
      if (!c) curves.set(job.jobId, c = {last: 0, ended: false, steps: [], tests: []});
      if (c.ended || job.state === 'QUEUED') continue;
      for (;;) {
        const reply = await api(`/api/jobs/${encodeURIComponent(job.jobId)}/events?after=${c.last}`);
        for (const e of reply.events) {
          if (!e.training) continue;
          const t = e.training, k = kind(t);
          if (k === 'STEP' && t.loss !== undefined) c.steps.push([t.step, t.loss]);
          if (k === 'EPOCH' && t.testAccuracy !== undefined) c.tests.push([t.epoch, t.testAccuracy]);
        }
        c.last = reply.last;
        c.ended = reply.ended;
        if (!reply.events.length || reply.ended) break;
      }
    }
  }

  function renderCurves(jobs, points) {
    const color = new Map(points.map((p, i) => [p, PDChart.PALETTE[i % PDChart.PALETTE.length]]));
    const named = new Set();
    const series = (key) => jobs.slice(0, MAX_CURVES).map((job) => {
      const point = job.sweepPoint ? pointWithoutSeed(job.sweepPoint) : '(base)';
      const first = !named.has(key + point);
      named.add(key + point);
      return {name: first ? shortPoint(point) : '', color: color.get(point) || '#888',
              points: (curves.get(job.jobId) || {})[key] || [], markers: key === 'tests'};
    });
    // Log scale: a diverging point's loss would flatten every other curve.
    PDChart.line($('#chart-loss'), series('steps'), {xTitle: 'step', logY: true});
    PDChart.line($('#chart-test'), series('tests'), {xTitle: 'epoch', integerX: true});
  }

  // A legend's label: each field by its last name ("training.learningRate=0.1" -> "learningRate=0.1").
  function shortPoint(point) {
    return point.split(' ').map((w) => w.replace(/^[^=]*\.(?=[^.=]*=)/, '')).join(' ');
  }

  // As `prelude compare` groups: the grid point without its seed.
  function pointWithoutSeed(point) {
    const words = point.split(/\s+/).filter((w) => w && !w.startsWith('training.seed='));
    return words.length ? words.join(' ') : '(base)';
  }

  PD.start(() => {
    if (!id) { PD.showError('no sweep: the address needs ?id=SWEEP_ID'); return; }
    poll(async () => {
      const data = await api('/api/sweeps/' + encodeURIComponent(id));
      const sweep = data.sweep, jobs = data.jobs;
      document.title = 'Prelude: ' + sweep.sweepId;
      $('#title').textContent = sweep.sweepId + (sweep.spec && sweep.spec.name ? ' · ' + sweep.spec.name : '');
      const by = {};
      for (const j of jobs) by[j.state] = (by[j.state] || 0) + 1;
      $('#counts').textContent = `${jobs.length} jobs: ` +
          Object.entries(by).map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ') +
          (sweep.owner ? ` · owner ${sweep.owner}` : '');
      renderTable(data);
      renderJobs(jobs);
      await readCurves(jobs);
      renderCurves(jobs, data.rows.map((r) => r.point));
      const running = jobs.some((j) => !isFinal(j.state));
      $('#content').dataset.ended = String(!running);
      return running;
    }, 2000);
  });
})();
