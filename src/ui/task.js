/**
 * One task (#/task/<type>/<identifier>), live through its event stream: the task (status,
 * counts, round, rollout), a grid of its endpoints coloured by state with their progress and
 * errors, grouped by wave when it rolls out, one endpoint in full (payload, output, history) on
 * click, and the cancel and retry buttons.
 */
import { taskPath } from './api.js';
import { badge, fill, h, json, time } from './dom.js';
import { follow } from './live.js';
import { FINAL_RESPONSE_STATUSES, FINAL_TASK_STATUSES } from './states.js';

export async function taskView({ api, root, signal, say }, type, identifier) {
  const path = taskPath(type, identifier);
  const head = h('section', { class: 'task-head' });
  const grid = h('section', { class: 'grid', 'aria-label': 'endpoints' });
  const detail = h('section', { class: 'detail', hidden: true });
  /** the task and its rows by endpoint, as the stream last told */
  let task = null;
  const rows = new Map();
  /** each endpoint's cell on screen */
  const cells = new Map();
  let selected = null;
  let confirming = false;
  let following = false;

  const report = (error) => {
    if (!signal.aborted && error.status !== 401) say(error.message, 'error');
  };

  const renderHead = () => fill(head, taskHead(task, actions()));

  const renderGrid = () => {
    cells.clear();
    const cell = (row) => {
      const made = endpointCell(row, row.endpoint === selected, select);
      cells.set(row.endpoint, made);
      return made;
    };
    fill(grid, endpointGrid(task, [...rows.values()], cell));
  };

  /** one row changed: its cell alone is drawn again, unless it is new or changed wave */
  const updateRow = (row) => {
    const before = rows.get(row.endpoint);
    rows.set(row.endpoint, withRegistry(row, before));
    const cell = cells.get(row.endpoint);
    if (cell === undefined || before.wave !== row.wave) return renderGrid();
    const made = endpointCell(row, row.endpoint === selected, select);
    cells.set(row.endpoint, made);
    cell.replaceWith(made);
  };

  const select = (endpoint) => {
    selected = endpoint;
    renderGrid();
    showEndpoint().catch(report);
  };

  const showEndpoint = async () => {
    if (selected === null) return;
    const endpoint = selected;
    const response = await api.get(taskPath(type, identifier, 'responses', endpoint), signal);
    if (selected === endpoint) fill(detail, endpointDetail(response)).hidden = false;
  };

  const onEvent = ({ event, data }) => {
    if (event === 'snapshot') {
      task = data.task;
      const before = new Map(rows);
      rows.clear();
      for (const row of data.taskResponseList) {
        rows.set(row.endpoint, withRegistry(row, before.get(row.endpoint)));
      }
      renderHead();
      renderGrid();
    } else if (event === 'task') {
      task = data;
      renderHead();
    } else if (event === 'response') {
      updateRow(data);
      if (data.endpoint === selected) showEndpoint().catch(report);
    }
  };

  /** follow the stream until the task is final (it ends then), or the view is left */
  const watch = async () => {
    if (following) return;
    following = true;
    await follow(api, `${path}/events`, signal, onEvent, report);
    following = false;
  };

  const act = async (action, body, done) => {
    try {
      const answer = await api.post(`${path}/${action}`, body);
      say(done(answer));
      watch();
    } catch (error) {
      report(error);
    }
  };

  /** the buttons; a cancel asks first, and stays asking while the task changes */
  const actions = () => {
    const confirm = (yes) => {
      confirming = yes;
      renderHead();
    };
    if (confirming && !FINAL_TASK_STATUSES.includes(task.status)) {
      const cancel = () => {
        confirm(false);
        act('cancel', { reason: 'cancelled from the dashboard' }, () => 'Cancel sent.');
      };
      return h(
        'div',
        { class: 'actions' },
        h('span', {}, 'Cancel every endpoint that has not finished?'),
        h('button', { type: 'button', class: 'danger', onclick: cancel }, 'Yes, cancel'),
        h('button', { type: 'button', onclick: () => confirm(false) }, 'No'),
      );
    }
    const final = FINAL_TASK_STATUSES.includes(task.status);
    const retryable = [...rows.values()].some((row) => row.status !== 'DONE');
    const retry = () => act('retry', {}, (answer) => `Round ${answer.round} started.`);
    return h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', disabled: final, onclick: () => confirm(true) }, 'Cancel task'),
      h('button', { type: 'button', disabled: !final || !retryable, onclick: retry }, 'Retry'),
    );
  };

  fill(root, head, grid, detail);
  const first = await api.get(path, signal);
  onEvent({ event: 'snapshot', data: first });
  watch();
}

/**
 * The row, with what the registry said of its agent while it is still PENDING: the GET tells
 * it (an agent down, or never seen), the stream's events do not.
 */
function withRegistry(row, before) {
  const registry = before?.registry;
  return row.status === 'PENDING' && row.registry === undefined && registry !== undefined
    ? { ...row, registry }
    : row;
}

function taskHead(task, actions) {
  const { counts } = task;
  const facts = [
    ['round', task.round],
    ['priority', task.priority],
    ['version', task.version],
    ['started', time(task.start_time)],
    ['finished', time(task.finished_at)],
    [
      'endpoints',
      `${counts.expected} expected, ${counts.received} received, ${counts.done} done, ` +
        `${counts.failed} failed, ${counts.undelivered} undelivered, ` +
        `${counts.cancelled} cancelled, ${counts.pending} pending`,
    ],
    ['selector', task.selector === null ? null : JSON.stringify(task.selector)],
    ['rollout', task.rollout === null ? null : rolloutText(task.rollout)],
    ['success threshold', task.success_threshold],
    ['stopped', task.stopped_reason],
    ['cancelled', task.cancel_reason],
  ].filter(([, value]) => value !== null && value !== undefined);
  return [
    h(
      'h1',
      {},
      h('a', { href: `#/tasks?type=${encodeURIComponent(task.type)}` }, task.type),
      ' / ',
      h('span', { class: 'identifier' }, task.identifier),
      ' ',
      h('span', { class: 'task-status' }, badge(task.status)),
    ),
    h(
      'dl',
      { class: 'facts' },
      facts.map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]),
    ),
    actions,
  ];
}

function rolloutText(rollout) {
  return (
    `${rollout.waves_sent} wave(s) sent; batch ${rollout.batch}, ` +
    `max errors ${rollout.max_errors ?? 'all'}, pause ${rollout.pause_ms} ms`
  );
}

/** The endpoints' cells (made by `cell`), by wave when the task rolls out. */
function endpointGrid(task, rows, cell) {
  const cells = (list) => h('div', { class: 'cells' }, list.map(cell));
  if (task.rollout === null) return cells(rows);
  const waves = new Map();
  for (const row of rows) waves.set(row.wave, [...(waves.get(row.wave) ?? []), row]);
  return [...waves.keys()]
    .sort((a, b) => a - b)
    .map((wave) => [h('h2', {}, `Wave ${wave}`), cells(waves.get(wave))]);
}

function endpointCell(row, isSelected, select) {
  return h(
    'button',
    {
      type: 'button',
      class: `cell status-${row.status.toLowerCase()}${isSelected ? ' selected' : ''}`,
      dataset: { endpoint: row.endpoint, status: row.status },
      'aria-pressed': isSelected ? 'true' : 'false',
      onclick: () => select(row.endpoint),
    },
    h('span', { class: 'name' }, row.endpoint),
    h('span', { class: 'state' }, row.status),
    cellDetail(row),
  );
}

/** What a cell says under its state: progress, error, or why it waits. */
function cellDetail(row) {
  if (row.status === 'RUNNING' && row.progress !== null) {
    const { current, total, line } = row.progress;
    return [
      total === null ? null : h('progress', { max: total, value: current }),
      h('span', { class: 'line' }, line ?? (total === null ? current : `${current}/${total}`)),
    ];
  }
  if (row.errnr !== null && row.errnr !== 0) {
    const error = h('span', { class: 'error' }, `errnr ${row.errnr}: ${row.errmsg ?? ''}`);
    // a RETRYING row shows the run that asked for the next, and when that starts
    return row.status === 'RETRYING' && row.next_attempt_at
      ? [error, h('span', { class: 'line' }, 'next try ', time(row.next_attempt_at))]
      : error;
  }
  if (row.status === 'PENDING' && row.registry !== undefined) {
    return h('span', { class: 'line' }, `agent ${row.registry.status.replace('_', ' ')}`);
  }
  if (row.round > 1 && !FINAL_RESPONSE_STATUSES.includes(row.status)) {
    return h('span', { class: 'line' }, `round ${row.round}`);
  }
  return null;
}

/** One endpoint in full: GET …/responses/<endpoint>. */
function endpointDetail(response) {
  const agent = response.agent;
  return [
    h('h2', {}, response.endpoint, ' ', badge(response.status)),
    h(
      'dl',
      { class: 'facts' },
      [
        ['round', response.round],
        ['attempt', response.attempt],
        ['wave', response.wave],
        ['errnr', response.errnr],
        ['errmsg', response.errmsg],
        ['next attempt', response.next_attempt_at ? time(response.next_attempt_at) : null],
        ['started', time(response.start_time)],
        ['finished', time(response.finished_at)],
        ['agent', agent ? `${agent.hostname} pid ${agent.pid}, tasker ${agent.version}` : null],
      ]
        .filter(([, value]) => value !== null && value !== undefined)
        .map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]),
    ),
    h('h3', {}, 'Payload'),
    json(response.payload),
    h('h3', {}, 'Output'),
    h('pre', { class: 'output' }, response.output ?? '(none)'),
    response.history.length === 0
      ? null
      : [
          h('h3', {}, 'Earlier rounds and attempts'),
          h(
            'ol',
            { class: 'history' },
            response.history.map((past) =>
              h(
                'li',
                {},
                `round ${past.round}, attempt ${past.attempt}: `,
                badge(past.status),
                past.errmsg === null ? null : ` ${past.errmsg}`,
              ),
            ),
          ),
        ],
  ];
}
