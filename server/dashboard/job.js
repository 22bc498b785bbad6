// A job: its details, live curves (loss, accuracy, learning rate, images/s), the init
// diagnostics (std per layer, log scale, one line per epoch), the learned slopes' spread
// over channels per epoch, its models, its worker output and its history. Events are read
// incrementally (/api/jobs/ID/events?after=N) every 1.5 s while the job has not ended, the
// worker output likewise (/api/jobs/ID/logs) every 2 s, following a requeued job's attempts.
'use strict';

(() => {
  const {api, download, el, $, fixed, compact, time, isFinal, kind, progress, stateBadge, poll, param} = PD;
  const id = param('id');
  const events = [];  // every JobEvent so far, in seq order
  let last = 0;

  function field(label, value, key, raw) {
    return el('div', {}, el('dt', {}, label),
              el('dd', {id: 'f-' + key, 'data-value': raw === undefined ? null : raw}, value));
  }

  function renderJob(job) {
    document.title = 'Prelude: ' + job.jobId;
    $('#title').textContent = job.jobId + (job.spec && job.spec.name ? ' · ' + job.spec.name : '');
    $('#f-state').replaceWith(Object.assign(stateBadge(job.state), {id: 'f-state'}));
    const waiting = $('#waiting');
    waiting.hidden = job.state !== 'QUEUED';
    if (job.state === 'QUEUED')
      waiting.textContent = (job.queuePosition ? 'Position ' + job.queuePosition + ' in the queue' : 'Queued') +
                            (job.waitingReason ? ': ' + job.waitingReason : '');
    $('#job-error').hidden = !job.error;
    $('#job-error').textContent = job.error || '';
    const m = job.latestMetrics || {}, p = progress(job), model = (job.spec && job.spec.model) || {};
    const act = model.activation || {}, init = model.init || {};
    const rows = [
      field('Owner', job.owner || '–', 'owner'),
      field('Progress', p.total ? `${p.step}/${p.total} steps` : `${p.step} steps`, 'progress', p.step),
      field('Epoch', (job.progress && job.progress.epoch) || m.epoch || '–', 'epoch'),
      field('Test accuracy', fixed(m.testAccuracy, 4), 'test-accuracy', m.testAccuracy),
      field('Test loss', fixed(m.testLoss, 4), 'test-loss', m.testLoss),
      field('Images/s', fixed(PD.imagesPerSecond(job), 0), 'images-per-second', PD.imagesPerSecond(job)),
      field('Model', [model.preset || 'layers', act.kind, init.scheme].filter(Boolean).join(' · '), 'model'),
      field('Attempts', String(job.attempts || 0), 'attempts'),
      field('Pool', job.poolId || '–', 'pool'),
      field('Sweep', job.sweepId ? el('a', {href: '/sweep.html?id=' + encodeURIComponent(job.sweepId)},
                                      job.sweepId + (job.sweepPoint ? ' · ' + job.sweepPoint : '')) : '–', 'sweep'),
      field('Created', time(job.createTime), 'created'),
      field('Started', time(job.startTime), 'started'),
      field('Ended', time(job.endTime), 'ended'),
    ];
    $('#summary').replaceChildren(...rows);
    renderDownloads(job);
  }

  function renderDownloads(job) {
    const list = job.checkpoints || [];
    $('#downloads').hidden = !list.length;
    const items = list.map((c) => {
      const which = c.final ? 'final' : String(c.step);
      const li = el('li', {}, (c.final ? 'final model' : 'checkpoint at step ' + c.step) + ` (${c.bytes} bytes) `);
      for (const format of ['prelude', 'onnx']) {
        const path = `/api/jobs/${encodeURIComponent(job.jobId)}/model?checkpoint=${which}&format=${format}`;
        const a = el('a', {href: path, class: 'download', 'data-format': format}, format === 'onnx' ? 'ONNX' : '.ckpt');
        a.addEventListener('click', (ev) => {
          ev.preventDefault();
          download(path, `${job.jobId}-${which}.${format === 'onnx' ? 'onnx' : 'ckpt'}`)
              .catch((e) => PD.showError('download: ' + e.message));
        });
        li.append(a, ' ');
      }
      return li;
    });
    $('#downloads ul').replaceChildren(...items);
  }

  function training(k) {
    return events.filter((e) => e.training && kind(e.training) === k).map((e) => e.training);
  }

  function renderCharts() {
    const steps = training('STEP'), epochs = training('EPOCH');
    const pts = (list, fx, fy) => list.filter((t) => fy(t) !== undefined).map((t) => [fx(t), fy(t)]);
    PDChart.line($('#chart-loss'), [
      {name: 'train (steps)', points: pts(steps, (t) => t.step, (t) => t.loss)},
      {name: 'train (epoch)', points: pts(epochs, (t) => t.step, (t) => t.trainLoss), dash: true, markers: true},
      {name: 'test (epoch)', points: pts(epochs, (t) => t.step, (t) => t.testLoss), markers: true},
    ], {xTitle: 'step'});
    PDChart.line($('#chart-accuracy'), [
      {name: 'train (steps)', points: pts(steps, (t) => t.step, (t) => t.accuracy)},
      {name: 'train (epoch)', points: pts(epochs, (t) => t.step, (t) => t.trainAccuracy), dash: true, markers: true},
      {name: 'test (epoch)', points: pts(epochs, (t) => t.step, (t) => t.testAccuracy), markers: true},
    ], {xTitle: 'step'});
    PDChart.line($('#chart-lr'), [{name: '', points: pts(steps, (t) => t.step, (t) => t.learningRate)}],
                 {xTitle: 'step', yMin: 0});
    PDChart.line($('#chart-ips'), [{name: '', points: pts(steps, (t) => t.step, (t) => t.imagesPerSecond)}],
                 {xTitle: 'step', yMin: 0});
    renderDiagnostics();
    renderSlopes(epochs);
  }

  function renderDiagnostics() {
    const diags = training('DIAGNOSTICS').filter((t) => (t.layers || []).length);
    const layers = diags.length ? diags[diags.length - 1].layers : [];
    for (const [svg, key] of [['#chart-act', 'activationStd'], ['#chart-grad', 'gradientStd']]) {
      const series = diags.map((t, i) => ({
        name: t.epoch ? 'after epoch ' + t.epoch : 'at init',
        color: PDChart.ramp(i, diags.length),
        points: (t[key] || []).map((v, layer) => [layer, v]),
        markers: true,
      }));
      PDChart.line($(svg), series, {logY: true, xLabels: layers, xTitle: 'layer',
                                    emptyText: 'no diagnostics events yet'});
    }
  }

  function renderSlopes(epochs) {
    const byLayer = new Map();
    for (const t of epochs)
      for (const a of t.alphas || []) {
        if (!(a.values || []).length) continue;
        if (!byLayer.has(a.layer)) byLayer.set(a.layer, []);
        byLayer.get(a.layer).push(Object.assign({x: t.epoch}, PDChart.quartiles(a.values), {n: a.values.length}));
      }
    const box = $('#slopes');
    if (!byLayer.size) {
      box.replaceChildren(el('p', {class: 'muted'}, 'no learned slopes yet (they come with each epoch, for PReLU)'));
      return;
    }
    const figures = [];
    let i = 0;
    for (const [layer, boxes] of byLayer) {
      let fig = box.querySelector(`figure[data-layer="${CSS.escape(layer)}"]`);
      if (!fig) {
        fig = el('figure', {'data-layer': layer}, el('figcaption', {}, ''));
        fig.append(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
        fig.lastChild.setAttribute('class', 'chart');
      }
      const lastBox = boxes[boxes.length - 1];
      fig.firstChild.textContent = `${layer} (${lastBox.n} channel${lastBox.n > 1 ? 's' : ''}; ` +
                                   `median ${compact(lastBox.median)})`;
      PDChart.boxes(fig.lastChild, boxes, {xTitle: 'epoch', color: PDChart.PALETTE[i++ % PDChart.PALETTE.length]});
      figures.push(fig);
    }
    box.replaceChildren(...figures);
  }

  function renderHistory() {
    const rows = events.filter((e) => e.stateChange).map((e) => {
      const s = e.stateChange;
      return el('tr', {}, el('td', {}, e.seq), el('td', {}, time(e.time)), el('td', {}, e.attempt || s.attempt || ''),
                el('td', {}, stateBadge(s.state)), el('td', {}, s.reason || ''));
    });
    $('#history tbody').replaceChildren(...rows);
  }

  // Lines as text nodes: what a pool wrote is never markup.
  function appendLogs(reply) {
    const box = $('#logs');
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    let text = '';
    if (reply.dropped > 0) text += `(${reply.dropped} earlier lines of this attempt are no longer kept)\n`;
    for (const l of reply.lines)
      text += `${new Date(Number(l.timeUnixMs || 0)).toISOString()} rank ${l.rank || 0}  ${l.text || ''}\n`;
    if (text) box.appendChild(document.createTextNode(text));
    if (atBottom) box.scrollTop = box.scrollHeight;
    box.dataset.lines = String(Number(box.dataset.lines || 0) + reply.lines.length);
  }

  function followLogs() {
    let attempt = 0, after = 0;  // attempt 0: the latest, until one is known
    poll(async () => {
      for (;;) {
        const reply = await api(`/api/jobs/${encodeURIComponent(id)}/logs?attempt=${attempt}&after=${after}`);
        if (reply.attempt && !attempt) {
          attempt = reply.attempt;
          $('#logs-attempt').textContent = '(attempt ' + attempt + ')';
        }
        appendLogs(reply);
        after = Number(reply.last);
        if (reply.ended && attempt && attempt < reply.latestAttempt) {  // requeued: on to the next attempt
          ++attempt;
          $('#logs').appendChild(document.createTextNode(`--- attempt ${attempt}\n`));
          $('#logs-attempt').textContent = '(attempt ' + attempt + ')';
          continue;
        }
        if (!reply.lines.length || reply.ended) return !reply.ended;
      }
    }, 2000);
  }

  PD.start(() => {
    if (!id) { PD.showError('no job: the address needs ?id=JOB_ID'); return; }
    followLogs();
    poll(async () => {
      // Batches until none is left, then one render.
      let reply;
      for (;;) {
        reply = await api(`/api/jobs/${encodeURIComponent(id)}/events?after=${last}`);
        events.push(...reply.events);
        last = reply.last;
        if (!reply.events.length || reply.ended) break;
      }
      const job = reply.job.state && PD.isFinal(reply.job.state) ? await api('/api/jobs/' + encodeURIComponent(id))
                                                                : reply.job;
      renderJob(job);
      renderCharts();
      renderHistory();
      $('#content').dataset.events = String(events.length);
      $('#content').dataset.ended = String(!!reply.ended);
      return !reply.ended;
    }, 1500);
  });
})();
