/**
 * Building the page: elements made with createElement and text added as text nodes, never as
 * HTML, so whatever the server sends (identifiers, error messages, output) is shown, not run.
 */

/**
 * `h('a', {href: '#/fleet', class: 'x', onclick: f}, 'text', child)`: attributes by name,
 * `on…` as listeners, children as nodes or text; null, undefined and false are left out.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...nodes(children));
  return element;
}

function nodes(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : String(child)));
}

/** Replace the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren(...nodes(children));
  return element;
}

/** A status as a coloured badge. */
export function badge(status) {
  return h('span', { class: `badge status-${String(status).toLowerCase()}` }, status);
}

/** A time from the API, in the browser's time zone, to the second; '–' for none. */
export function time(iso) {
  if (iso === null || iso === undefined) return '–';
  const at = new Date(iso);
  const two = (n) => String(n).padStart(2, '0');
  return h(
    'time',
    { datetime: iso },
    `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())} ` +
      `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`,
  );
}

/** Milliseconds in words: `90 s`, `5 min`, `2 h`, `3 d`. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const units = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [size, unit] of units)
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}

/** Any JSON value, indented, as text. */
export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** A table: a row of headings, then `body` (a tbody element). */
export function table(headings, body) {
  const head = h(
    'tr',
    {},
    headings.map((heading) => h('th', {}, heading)),
  );
  return h('table', {}, h('thead', {}, head), body);
}
