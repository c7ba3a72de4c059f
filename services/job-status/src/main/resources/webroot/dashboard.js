// The dashboard: every job's status from /api/events (server-sent events), kept live without a
// reload, a form that submits a request to POST /api/jobs, and a Cancel button on every job that has
// not ended (DELETE /api/jobs/{id}). Every call carries the API token in an Authorization header, so
// the stream is read with fetch(): EventSource cannot send one.
'use strict';

const jobs = new Map(); // jobId -> latest status
const ENDED = new Set(['DONE', 'FAILED', 'CANCELLED']);
const COLORS = ['#3b6fd8', '#e0732a', '#2e9d55', '#9b4dca', '#c9304a', '#1a9aa0'];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => (k === 'class' ? (node.className = v) : node.setAttribute(k, v)));
  children.flat().forEach(c => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
  return node;
}

const fmt = {
  pct: v => (v == null ? '–' : (100 * v).toFixed(2) + '%'),
  int: v => (v == null ? '–' : Number(v).toLocaleString('en')),
  ratio: v => (v == null || !isFinite(v) ? '–' : v.toFixed(1) + 'x'),
  time: ms => (ms ? new Date(ms).toLocaleTimeString() : ''),
  num: v => (v == null ? '–' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)),
};

// The API token: asked for once and kept for this tab (sessionStorage), or taken from a link's
// fragment (/#token=...), which browsers never send to a server, then removed from the address bar.
const TOKEN_KEY = 'distillery.api-token';
let asking = null; // { promise, resolve } while the token form is shown, shared by every call waiting

/** The token in the address bar's fragment, if any, removed from there; or null. */
function tokenFromFragment() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    return decodeURIComponent(match[1]);
  } catch (e) {
    return null; // not a token this service made
  }
}

/** Keeps the token for this tab and lets every call waiting for one go on. */
function useToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (asking) {
    document.getElementById('token-form').hidden = true;
    document.getElementById('token').value = '';
    asking.resolve(token);
    asking = null;
  }
}

/** Shows the token form, saying why, until a token is entered or linked; resolves with it. */
function askForToken(why) {
  if (!asking) {
    let resolve;
    const promise = new Promise(r => (resolve = r));
    asking = { promise, resolve };
    document.getElementById('token-problem').textContent = why;
    document.getElementById('token-form').hidden = false;
    document.getElementById('token').focus();
  }
  return asking.promise;
}

/** fetch() with the token; on a 401 asks for another one and tries again. */
async function api(path, options = {}) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY) || await askForToken('This dashboard needs the API token.');
    const headers = { ...(options.headers || {}), authorization: `Bearer ${token}` };
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    // Another call may have replaced the token meanwhile: then only retry.
    if (sessionStorage.getItem(TOKEN_KEY) === token) {
      sessionStorage.removeItem(TOKEN_KEY);
      await askForToken('The token was refused: enter the API token again.');
    }
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

/** The event stream, read as it arrives; reconnects 2 s after it ends or fails, from a fresh snapshot. */
async function connect() {
  const status = document.getElementById('connection');
  for (;;) {
    try {
      const response = await api('api/events', { headers: { accept: 'text/event-stream' }, cache: 'no-store' });
      if (response.ok && response.body) {
        status.textContent = 'live';
        await readEvents(response.body.getReader(), (type, data) => {
          if (type === 'job') received(JSON.parse(data));
          else if (type === 'removed') forget(JSON.parse(data).jobId);
        });
      }
    } catch (e) {
      // A dropped connection: reconnect below.
    }
    status.textContent = 'reconnecting…';
    await sleep(2000);
  }
}

/** Calls onEvent(type, data) for each server-sent event until the stream ends (this server ends lines with \n). */
async function readEvents(reader, onEvent) {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      const data = [];
      block.split('\n').forEach(line => {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      });
      if (data.length) onEvent(type, data.join('\n'));
    }
  }
}

function received(job) {
  const known = jobs.get(job.jobId);
  if (!known || known.updatedAtMs <= job.updatedAtMs) {
    jobs.set(job.jobId, job);
    render(job);
  }
}

/** A job the service deleted after its retention. */
function forget(jobId) {
  jobs.delete(jobId);
  const card = cardOf(jobId);
  if (card) card.remove();
  document.getElementById('no-jobs').hidden = jobs.size > 0;
}

function cardOf(jobId) {
  return document.getElementById('jobs').querySelector(`.job[data-job-id="${CSS.escape(jobId)}"]`);
}

function render(job) {
  document.getElementById('no-jobs').hidden = true;
  const container = document.getElementById('jobs');
  let card = cardOf(job.jobId);
  if (!card) {
    card = el('article', { class: 'job', 'data-job-id': job.jobId }, el('div', { class: 'job-body' }),
      el('div', { class: 'job-actions' }));
    // Newest first, as /api/jobs lists them.
    const later = [...container.children].find(c => jobs.get(c.dataset.jobId).submittedAtMs < job.submittedAtMs);
    container.insertBefore(card, later || null);
  }
  card.dataset.state = job.state;
  card.querySelector('.job-body').replaceChildren(head(job), ...stages(job), charts(job), failure(job),
    cancellation(job), results(job));
  actions(card.querySelector('.job-actions'), job);
}

/**
 * The Cancel button and an optional reason, on a job that has not ended. Made once and left alone by
 * later updates, so a reason being typed survives them; gone once the job ends.
 */
function actions(box, job) {
  if (ENDED.has(job.state)) {
    box.replaceChildren();
    return;
  }
  if (box.childElementCount) return;
  const reason = el('input', { class: 'cancel-reason', type: 'text', maxlength: '1000',
    placeholder: 'reason (optional)', 'aria-label': `reason for cancelling ${job.jobId}` });
  const button = el('button', { class: 'cancel', type: 'button' }, 'Cancel');
  const out = el('span', { class: 'cancel-result', role: 'status' });
  button.addEventListener('click', () => cancel(job.jobId, reason.value.trim(), button, out));
  box.replaceChildren(reason, button, out);
}

/** DELETE /api/jobs/{id}; the job shows CANCELLED when its status says so, through the event stream. */
async function cancel(jobId, reason, button, out) {
  button.disabled = true;
  out.className = 'cancel-result';
  out.textContent = 'cancelling…';
  let response, body;
  try {
    response = await api(`api/jobs/${encodeURIComponent(jobId)}`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason }),
    });
    body = await response.json();
  } catch (e) {
    out.className = 'cancel-result error';
    out.textContent = response ? `HTTP ${response.status}: ${response.statusText}` : `not sent: ${e.message}`;
    button.disabled = false;
    return;
  }
  if (response.status === 202) {
    out.textContent = 'cancellation sent';
  } else {
    out.className = 'cancel-result error';
    out.textContent = body.error || `HTTP ${response.status}`;
    button.disabled = response.status === 409; // it ended meanwhile: nothing left to cancel
  }
}

function head(job) {
  const r = job.request;
  const what = r
    ? `${modelName(r.teacher)} → ${r.stages.includes('TRANSFER') ? 'new head' : modelName(r.student)} · ${r.stages.join(', ')}`
    : '';
  return el('div', { class: 'job-head' },
    el('span', { class: 'job-id' }, job.jobId),
    el('span', { class: `state ${job.state}` }, job.state),
    el('span', { class: 'muted' }, what),
    el('span', { class: 'muted' }, 'submitted ' + fmt.time(job.submittedAtMs)));
}

function stages(job) {
  return job.stages.map(s => {
    const p = s.latest;
    const fraction = s.done ? 1 : p ? p.fraction : 0;
    const left = !s.done && p && p.secondsLeft !== null && p.secondsLeft !== undefined && p.fraction < 1
      ? ` (${duration(p.secondsLeft)} left)` : '';
    const bar = el('div', { class: 'bar' }, el('div', { style: `width:${(100 * fraction).toFixed(1)}%` }));
    return el('div', { class: 'stage' + (s.done ? ' done' : ''), 'data-stage': s.stage },
      el('span', {}, s.stage),
      bar,
      el('span', { class: 'muted' }, p ? `${p.step}/${p.totalSteps}${left} ${p.message}` : 'done'));
  });
}

/** 42 s, 3 min 5 s, 2 h 10 min: as the CLI writes it. */
function duration(seconds) {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s`
    : `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;
}

/**
 * Per stage, its loss and its accuracies per reported step (an epoch, or a pruning step's
 * fine-tuning); for an accuracy budget, the validation accuracy of each sparsity the pruner tried.
 */
function charts(job) {
  const box = el('div', { class: 'charts' });
  const figures = [
    ['loss', 'loss', name => name === 'loss'],
    ['accuracy', 'accuracy', name => /accuracy/i.test(name) && name !== 'accuracyBefore'],
  ];
  const stages = [...new Set(job.history.map(p => p.stage))];
  for (const stage of stages) {
    const steps = job.history.filter(p => p.stage === stage);
    for (const [kind, yLabel, wanted] of figures) {
      const series = new Map();
      steps.forEach((p, i) => Object.entries(p.metrics).forEach(([name, value]) => {
        if (wanted(name) && value != null) {
          if (!series.has(name)) series.set(name, []);
          series.get(name).push([i + 1, value]);
        }
      }));
      if (series.size) box.append(chart(kind, stage, `${stage.toLowerCase()}: ${yLabel}`, 'reported step', yLabel, series));
    }
  }
  const explored = job.result && job.result.pruning && job.result.pruning.explored;
  if (explored && explored.length) {
    box.append(chart('budget', 'PRUNING', 'pruning: accuracy budget', 'sparsity', 'validation accuracy',
      new Map([['validation accuracy', explored.map(s => [s.sparsity, s.validationAccuracy])]])));
  }
  return box;
}

/** A line chart of {@code series} (name to [x, y] points) with labelled axes. */
function chart(kind, stage, title, xLabel, yLabel, series) {
  const width = 360, height = 180, left = 44, right = 12, top = 18, bottom = 34;
  const canvas = el('canvas', { width, height, class: `chart-${kind}`, 'data-stage': stage });
  const ctx = canvas.getContext('2d');
  const points = [...series.values()].flat();
  let lo = Math.min(...points.map(p => p[1])), hi = Math.max(...points.map(p => p[1]));
  if (hi === lo) { hi += 0.5; lo -= 0.5; }
  let x0 = Math.min(...points.map(p => p[0])), x1 = Math.max(...points.map(p => p[0]));
  if (x1 === x0) { x1 += 1; x0 -= 1; }
  const x = v => left + ((v - x0) * (width - left - right)) / (x1 - x0);
  const y = v => height - bottom - ((v - lo) * (height - top - bottom)) / (hi - lo);
  ctx.font = '10px sans-serif';
  ctx.fillStyle = '#667';
  ctx.strokeStyle = '#c5cad3';
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, height - bottom);
  ctx.lineTo(width - right, height - bottom);
  ctx.stroke();
  ctx.fillText(title, left, 11);
  ctx.textAlign = 'right';
  ctx.fillText(fmt.num(hi), left - 3, top + 4);
  ctx.fillText(fmt.num(lo), left - 3, height - bottom);
  ctx.textAlign = 'center';
  ctx.fillText(fmt.num(x0), left, height - bottom + 12);
  ctx.fillText(fmt.num(x1), width - right, height - bottom + 12);
  ctx.fillText(xLabel, (left + width - right) / 2, height - 6);
  ctx.save();
  ctx.translate(10, (top + height - bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  const legend = el('div', { class: 'legend' });
  [...series.entries()].forEach(([name, values], n) => {
    const color = COLORS[n % COLORS.length];
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    values.forEach(([vx, vy], i) => (i ? ctx.lineTo(x(vx), y(vy)) : ctx.moveTo(x(vx), y(vy))));
    ctx.stroke();
    values.forEach(([vx, vy]) => ctx.fillRect(x(vx) - 2, y(vy) - 2, 4, 4));
    legend.append(el('span', { style: `color:${color}; margin-right:.8rem` },
      `■ ${name} (${fmt.num(values[values.length - 1][1])})`));
  });
  return el('div', { class: 'chart' }, canvas, legend);
}

function failure(job) {
  const f = job.failure;
  if (!f) return el('div');
  return el('div', { class: 'failure' },
    `Failed in ${f.stage}` + (f.field ? ` (field ${f.field})` : '') + `: ${f.reason}`);
}

function cancellation(job) {
  const c = job.cancellation;
  if (!c) return el('div');
  return el('div', { class: 'cancellation' },
    `Cancelled by ${c.requestedBy || 'a client'}` + (c.reason ? `: ${c.reason}` : ' (no reason given)'));
}

/** A requested model as a person names it: its architecture, and whether it is the user's TorchScript. */
function modelName(spec) {
  return spec.format === 'TORCHSCRIPT' ? `${spec.architecture || 'user model'} (TorchScript)` : spec.architecture;
}

/** The result side by side with the teacher: accuracy, size, sparsity, speed. */
function results(job) {
  const r = job.result;
  if (!r) return el('div');
  const teacher = r.teacher;
  const rows = [['teacher', teacher], ['baseline', r.baseline], ['student', r.student], ['pruned', r.pruned]]
    .filter(([, m]) => m);
  const table = el('table', { class: 'results' },
    el('tr', {}, ['model', 'architecture', 'accuracy', 'vs teacher', 'parameters', 'non-zero',
      'fewer non-zero than teacher', 'bytes', 'smaller than teacher'].map(h => el('th', {}, h))));
  rows.forEach(([name, m]) => {
    const arch = m.architecture + (m.hiddenUnits && m.hiddenUnits.length ? ` [${m.hiddenUnits.join(', ')}]` : ` ×${m.width}`);
    const bytes = name === 'pruned' && r.sparseCheckpoint ? r.sparseCheckpoint.sizeBytes : m.checkpointBytes;
    table.append(el('tr', { 'data-model': name },
      el('td', {}, name), el('td', {}, arch), el('td', { class: 'accuracy' }, fmt.pct(m.testAccuracy)),
      el('td', {}, teacher && name !== 'teacher' ? ((100 * (m.testAccuracy - teacher.testAccuracy)).toFixed(2) + ' pts') : ''),
      el('td', {}, fmt.int(m.parameters)), el('td', {}, fmt.int(m.nonZeroParameters)),
      el('td', {}, teacher ? fmt.ratio(teacher.nonZeroParameters / m.nonZeroParameters) : ''),
      el('td', {}, fmt.int(bytes) + (name === 'pruned' && r.sparseCheckpoint ? ' (sparse)' : '')),
      el('td', {}, teacher ? fmt.ratio(teacher.checkpointBytes / bytes) : '')));
  });
  const lines = [];
  if (r.pruned) lines.push(`sparsity ${fmt.pct(r.sparsity)} of prunable weights (target ${fmt.pct(r.targetSparsity)})`);
  const p = r.pruning;
  if (p) {
    lines.push(`pruning: ${fmt.pct(p.accuracyBefore)} before, ${fmt.pct(p.accuracyPruned)} pruned, ${fmt.pct(p.accuracyFineTuned)} fine-tuned`);
    lines.push(`speed-up at batch 256: ${fmt.ratio(p.latencyMsBatch256Before / p.latencyMsBatch256After)}`
      + ` (${p.latencyMsBatch256Before.toFixed(2)} → ${p.latencyMsBatch256After.toFixed(2)} ms),`
      + ` batch 1: ${fmt.ratio(p.latencyMsBatch1Before / p.latencyMsBatch1After)}`
      + (r.finalFormat === 'TORCHSCRIPT' ? '' : `; multiply-accumulates ${fmt.int(p.macsBefore)} → ${fmt.int(p.macsAfter)}`));
    if (p.unprunedParameters > 0) lines.push(`left dense: ${fmt.int(p.unprunedParameters)} parameters outside the pruned weights (biases, batch norm)`);
  }
  if (r.finalFormat === 'TORCHSCRIPT') lines.push('final model: TorchScript, opens with torch.jit.load');
  const q = r.quantization;
  if (q) {
    lines.push(`int8: ${fmt.pct(q.accuracyFloat)} → ${fmt.pct(q.accuracyInt8)} in ONNX Runtime,`
      + ` weights ${fmt.int(q.weightBytesFloat)} → ${fmt.int(q.weightBytesInt8)} bytes, calibrated on ${fmt.int(q.calibrationImages)} images`);
  }
  return el('div', { class: 'results-box' }, table, ...lines.map(l => el('p', { class: 'summary' }, l)), artifacts(r));
}

/** Every file of the final model, with what was measured of each (ONNX Runtime for ONNX, DJL otherwise). */
function artifacts(r) {
  if (!r.artifacts || !r.artifacts.length) return el('div');
  const number = (v, digits) => v === null || v === undefined ? '–' : v.toFixed(digits);
  const table = el('table', { class: 'results artifacts' },
    el('tr', {}, ['file', 'kind', 'bytes', 'accuracy', 'batch 1 ms', 'batch 256 ms', 'measured by']
      .map(h => el('th', {}, h))));
  r.artifacts.forEach(a => table.append(el('tr', { 'data-artifact': a.kind },
    el('td', {}, a.file.uri.substring(a.file.uri.lastIndexOf('/') + 1)), el('td', {}, a.kind),
    el('td', {}, fmt.int(a.file.sizeBytes)),
    el('td', { class: 'accuracy' }, a.testAccuracy === null || a.testAccuracy === undefined ? '–' : fmt.pct(a.testAccuracy)),
    el('td', {}, number(a.latencyMsBatch1, 3)), el('td', {}, number(a.latencyMsBatch256, 2)),
    el('td', {}, a.runtime || '–'))));
  return table;
}

async function submit(event) {
  event.preventDefault();
  const out = document.getElementById('submit-result');
  out.className = '';
  out.textContent = 'submitting…';
  let response, body;
  try {
    response = await api('api/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: document.getElementById('request').value,
    });
    body = await response.json();
  } catch (e) {
    out.className = 'error';
    out.textContent = response ? `HTTP ${response.status}: ${response.statusText}` : `not sent: ${e.message}`;
    return;
  }
  if (response.status === 202) {
    out.textContent = `submitted ${body.jobId}`;
    out.dataset.jobId = body.jobId;
  } else {
    out.className = 'error';
    out.textContent = body.errors ? body.errors.map(e => `${e.field}: ${e.problem}`).join('\n') : body.error;
  }
}

async function loadExample() {
  const response = await api('api/example-request');
  if (response.ok) {
    document.getElementById('request').value = JSON.stringify(await response.json(), null, 2);
    showChoices();
  }
}

const ARCHITECTURES = ['mlp', 'lenet5', 'convnet', 'simplecnn', 'resnet20', 'bncnn'];

/** The request in the JSON editor, or null while it does not parse. */
function editedRequest() {
  try {
    const request = JSON.parse(document.getElementById('request').value);
    return request && typeof request === 'object' ? request : null;
  } catch (e) {
    return null;
  }
}

/** The form's fields as the JSON says (the JSON is the request; the form is a view of its common parts). */
function showChoices() {
  const request = editedRequest();
  document.getElementById('choices').disabled = !request;
  if (!request) return;
  document.querySelectorAll('#choices [data-path]').forEach(input => {
    const value = input.dataset.path.split('.').reduce((o, key) => (o == null ? undefined : o[key]), request);
    input.value = value === null || value === undefined ? '' : value;
  });
  document.querySelectorAll('#choices [data-stage]').forEach(box => {
    box.checked = (request.stages || []).includes(box.dataset.stage);
  });
}

/** One field changed: written into the JSON. */
function choose(event) {
  const request = editedRequest();
  if (!request) return;
  const input = event.target;
  if (input.dataset.stage) {
    const order = [...document.querySelectorAll('#choices [data-stage]')].map(b => b.dataset.stage);
    const chosen = new Set([...document.querySelectorAll('#choices [data-stage]:checked')].map(b => b.dataset.stage));
    request.stages = order.filter(stage => chosen.has(stage));
  } else {
    const keys = input.dataset.path.split('.');
    const parent = keys.slice(0, -1).reduce((o, key) => (o[key] = o[key] || {}), request);
    const last = keys[keys.length - 1];
    parent[last] = input.type === 'number' ? (input.value === '' ? null : Number(input.value)) : input.value;
  }
  document.getElementById('request').value = JSON.stringify(request, null, 2);
}

document.querySelectorAll('#choices select.architectures').forEach(select =>
  ARCHITECTURES.forEach(name => select.append(el('option', { value: name }, name))));
document.getElementById('choices').addEventListener('change', choose);
document.getElementById('request').addEventListener('input', showChoices);
document.getElementById('submit-form').addEventListener('submit', submit);
document.getElementById('token-form').addEventListener('submit', event => {
  event.preventDefault();
  const token = document.getElementById('token').value.trim();
  if (token) useToken(token);
});
window.addEventListener('hashchange', () => {
  const token = tokenFromFragment();
  if (token) useToken(token);
});
const linked = tokenFromFragment();
if (linked) useToken(linked);
loadExample();
connect();
