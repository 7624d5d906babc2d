/**
 * The fleet (#/fleet): every endpoint the registry knows, online, offline or stopped, with its
 * labels, task types, tasker and handler versions and load, and a summary of versions. The
 * registry changes with heartbeats (every 15 s by default), so it is read again every 5 s.
 */
import { badge, fill, h, table, time } from './dom.js';
import { every } from './live.js';

const REFRESH_MS = 5000;

export async function fleetView({ api, root, signal, say }) {
  const summary = h('section', { class: 'summary' });
  const rows = h('tbody');
  fill(
    root,
    h('h1', {}, 'Fleet'),
    summary,
    table(
      [
        'endpoint',
        'status',
        'since',
        'labels',
        'types',
        'tasker',
        'handlers',
        'host',
        'last seen',
        'running',
      ],
      rows,
    ),
  );
  const read = async () => {
    // without a limit, a page is as long as the server allows (api.max_list)
    const page = await api.get('endpoints', signal);
    fill(summary, summaryOf(page.summary, page.next === null ? null : page.endpoints.length));
    fill(rows, page.endpoints.map(endpointRow));
  };
  await read();
  every(REFRESH_MS, signal, read, (error) => say(error.message, 'error'));
}

/** The counts by status and version; `shown`: how many are listed, when not all are. */
function summaryOf(summary, shown) {
  const counts = (record) =>
    Object.entries(record)
      .map(([name, count]) => `${name} ${count}`)
      .join(', ') || 'none';
  return [
    h(
      'p',
      {},
      `${summary.total} endpoint(s): ${counts(summary.statuses)}`,
      shown === null ? '' : ` (the first ${shown} shown)`,
    ),
    h('p', {}, `tasker versions: ${counts(summary.versions)}`),
  ];
}

function endpointRow(endpoint) {
  const handlers = Object.entries(endpoint.handlers ?? {}).map(
    ([type, version]) => `${type} ${version}`,
  );
  return h(
    'tr',
    { dataset: { endpoint: endpoint.name, status: endpoint.status } },
    h('td', {}, endpoint.name),
    h('td', {}, badge(endpoint.status)),
    h('td', {}, time(endpoint.since)),
    h(
      'td',
      {},
      Object.entries(endpoint.labels).map(([key, value]) =>
        h('span', { class: 'label' }, `${key}=${value}`),
      ),
    ),
    h('td', {}, endpoint.types.join(', ')),
    h('td', {}, endpoint.version),
    h('td', {}, handlers.join(', ')),
    h('td', {}, endpoint.hostname === null ? '–' : `${endpoint.hostname} pid ${endpoint.pid}`),
    h('td', {}, time(endpoint.last_seen_at)),
    h('td', {}, `${endpoint.running}/${endpoint.capacity}`),
  );
}
