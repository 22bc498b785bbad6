// The jobs list: a page of jobs (newest first) from /api/jobs, filtered by state and
// sweep (kept in the address, so a filtered list can be linked), refreshed every 2 s.
'use strict';

(() => {
  const {api, el, $, fixed, progressCell, accuracy, imagesPerSecond, numCell, stateBadge, poll, param} = PD;
  const PAGE = 50;

  function row(job) {
    const id = el('a', {href: '/job.html?id=' + encodeURIComponent(job.jobId)}, job.jobId);
    const sweep = job.sweepId ? el('a', {href: '/sweep.html?id=' + encodeURIComponent(job.sweepId)}, job.sweepId) : '';
    let note = '';
    if (job.state === 'QUEUED')
      note = el('span', {class: 'waiting', 'data-position': job.queuePosition || 0},
                (job.queuePosition ? '#' + job.queuePosition + ' in queue' : 'queued') +
                (job.waitingReason ? ': ' + job.waitingReason : ''));
    else if (job.error) note = el('span', {class: 'error-text'}, job.error);
    const name = (job.spec && job.spec.name) || '';
    // A sweep's jobs are named after their grid point already.
    const point = job.sweepPoint && !name.includes(job.sweepPoint) ? job.sweepPoint : '';
    return el('tr', {'data-job-id': job.jobId, 'data-state': job.state},
              el('td', {}, id), el('td', {}, name, point ? ' ' : '', point ? el('span', {class: 'muted'}, point) : ''),
              el('td', {}, stateBadge(job.state)), el('td', {}, job.owner || ''), progressCell(job),
              numCell(accuracy(job), 4, 'acc'), numCell(imagesPerSecond(job), 0, 'ips'), el('td', {}, sweep),
              el('td', {class: 'note'}, note));
  }

  PD.start(() => {
    const state = param('state'), sweep = param('sweep'), token = param('page');
    $('#state').value = state;
    $('#sweep').value = sweep;
    $('#filters').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if ($('#state').value) q.set('state', $('#state').value);
      if ($('#sweep').value.trim()) q.set('sweep', $('#sweep').value.trim());
      location.search = q.toString();
    });
    const base = new URLSearchParams();
    if (state) base.set('state', state);
    if (sweep) base.set('sweep', sweep);
    $('#newest').href = '/?' + base.toString();
    $('#newest').hidden = !token;
    poll(async () => {
      const q = new URLSearchParams(base);
      q.set('page_size', PAGE);
      if (token) q.set('page_token', token);
      const page = await api('/api/jobs?' + q.toString());
      const jobs = page.jobs || [];
      $('#jobs tbody').replaceChildren(...jobs.map(row));
      $('#empty').hidden = jobs.length > 0;
      const older = new URLSearchParams(base);
      if (page.nextPageToken) older.set('page', page.nextPageToken);
      $('#older').href = '/?' + older.toString();
      $('#older').hidden = !page.nextPageToken;
      $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      return true;
    }, 2000);
  });
})();
