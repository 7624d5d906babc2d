/**
 * The task list (#/tasks?type=&status=&identifier=): newest first, filtered by type, status and
 * identifier prefix, read again whenever the stream of every change says a task changed.
 */
import { taskPath } from './api.js';
import { badge, fill, h, table, time } from './dom.js';
import { debounce, follow } from './live.js';
import { TASK_STATUSES } from './states.js';

const PAGE = 50;
/** changes that come close together cause one read */
const SETTLE_MS = 250;

export async function tasksView({ api, root, signal, say }, query) {
  const filter = new URLSearchParams(query);
  const { types } = await api.get('types', signal);
  let limit = PAGE;
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'More');
  const empty = h('p', { class: 'empty', hidden: true }, 'No tasks.');

  const load = async () => {
    const params = new URLSearchParams({ limit: String(limit) });
    for (const key of ['status', 'identifier']) {
      if (filter.get(key)) params.set(key, filter.get(key));
    }
    const type = filter.get('type');
    const path = type ? `${encodeURIComponent(type)}?${params}` : `tasks?${params}`;
    const page = await api.get(path, signal);
    fill(rows, page.tasks.map(taskRow));
    more.hidden = page.next === null;
    empty.hidden = page.tasks.length > 0;
  };
  const report = (error) => {
    if (!signal.aborted && error.status !== 401) say(error.message, 'error');
  };
  // the list is one page that grows, so that reading it again keeps what was shown; past the
  // server's api.max_list it is refused, and stays as it was
  more.addEventListener('click', () => {
    limit += PAGE;
    load().catch((error) => {
      limit -= PAGE;
      more.hidden = true;
      report(error);
    });
  });

  fill(
    root,
    h('h1', {}, 'Tasks'),
    filters(filter, types),
    table(['type', 'identifier', 'status', 'endpoints', 'started', 'finished'], rows),
    empty,
    more,
  );
  await load();

  // not filtered by status: a task leaving the status shown must leave the list too
  const type = filter.get('type');
  const reload = debounce(SETTLE_MS, signal, () => load().catch(report));
  follow(api, type ? `events?type=${encodeURIComponent(type)}` : 'events', signal, reload, report);
}

/** The filters, which change the page's address (so that a filtered list can be linked to). */
function filters(filter, types) {
  const select = (name, options) =>
    h(
      'select',
      { name, 'aria-label': name },
      h('option', { value: '' }, `any ${name}`),
      options.map((option) =>
        h('option', { value: option, selected: filter.get(name) === option }, option),
      ),
    );
  const form = h(
    'form',
    { class: 'filters' },
    select(
      'type',
      types.map((type) => type.name),
    ),
    select('status', TASK_STATUSES),
    h('input', {
      name: 'identifier',
      placeholder: 'identifier starts with',
      'aria-label': 'identifier starts with',
      value: filter.get('identifier') ?? '',
    }),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const apply = (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value !== '') chosen.set(key, value);
    location.hash = `#/tasks?${chosen}`;
  };
  form.addEventListener('submit', apply);
  form.addEventListener('change', (event) => {
    if (event.target.tagName === 'SELECT') apply(event);
  });
  return form;
}

function taskRow(task) {
  const { counts } = task;
  return h(
    'tr',
    { dataset: { task: `${task.type}/${task.identifier}` } },
    h('td', {}, task.type),
    h(
      'td',
      {},
      h('a', { href: `#/task/${taskPath(task.type, task.identifier)}` }, task.identifier),
    ),
    h('td', { class: 'status' }, badge(task.status)),
    h(
      'td',
      {},
      `${counts.done} done, ${counts.failed} failed, ${counts.pending} pending of ${counts.expected}`,
    ),
    h('td', {}, time(task.start_time)),
    h('td', {}, time(task.finished_at)),
  );
}
