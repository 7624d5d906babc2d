/**
 * The schedules (#/schedules): what each makes and when, whether it is paused, when it ran and
 * runs next, why its latest due time made no task, and a link to the tasks it made. Read again
 * every 10 s.
 */
import { duration, fill, h, table, time } from './dom.js';
import { every } from './live.js';

const REFRESH_MS = 10_000;

export async function schedulesView({ api, root, signal, say }) {
  const rows = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, 'No schedules.');
  fill(
    root,
    h('h1', {}, 'Schedules'),
    table(
      ['name', 'type', 'when', 'endpoints', 'state', 'next run', 'last run', 'last error'],
      rows,
    ),
    empty,
  );
  const read = async () => {
    const { schedules } = await api.get('schedules', signal);
    fill(rows, schedules.map(scheduleRow));
    empty.hidden = schedules.length > 0;
  };
  await read();
  every(REFRESH_MS, signal, read, (error) => say(error.message, 'error'));
}

function scheduleRow(schedule) {
  const when =
    schedule.cron === null
      ? `every ${duration(schedule.interval_ms ?? schedule.every_ms)}`
      : `${schedule.cron} (${schedule.timezone})`;
  // its tasks are named <name>@<due time>
  const tasks = new URLSearchParams({ type: schedule.type, identifier: `${schedule.name}@` });
  return h(
    'tr',
    { dataset: { schedule: schedule.name } },
    h('td', {}, h('a', { href: `#/tasks?${tasks}` }, schedule.name)),
    h('td', {}, schedule.type),
    h('td', {}, when),
    h('td', {}, endpointsText(schedule.endpoints)),
    h('td', {}, schedule.paused ? 'paused' : 'active'),
    h('td', {}, time(schedule.next_run_at)),
    h('td', {}, time(schedule.last_run_at)),
    h('td', { class: schedule.last_error === null ? null : 'error' }, schedule.last_error ?? ''),
  );
}

function endpointsText(endpoints) {
  if (endpoints === null || endpoints === undefined) return 'broadcast';
  return Array.isArray(endpoints) ? endpoints.join(', ') : JSON.stringify(endpoints);
}
