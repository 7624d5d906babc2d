/**
 * The dashboard's entry: the token (asked once, kept for the tab), the views by the URL's hash
 * (#/tasks, #/task/<type>/<identifier>, #/fleet, #/schedules), and what a refused token does:
 * every view and stream is stopped and removed, and only the message stays.
 */
import { createApi, token } from './api.js';
import { fill, h } from './dom.js';
import { fleetView } from './fleet.js';
import { schedulesView } from './schedules.js';
import { taskView } from './task.js';
import { tasksView } from './tasks.js';

const view = document.getElementById('view');
const tokenForm = document.getElementById('token-form');
const tokenInput = document.getElementById('token');
const tokenMessage = document.getElementById('token-message');
const forgetButton = document.getElementById('forget-token');
const notice = document.getElementById('notice');

/** stops the view on screen: its streams and timers */
let current = new AbortController();

// the API is the server's root, relative to this page (/ui/)
const api = createApi(new URL('../', location.href), (presented) =>
  askForToken(
    presented
      ? 'Token refused: the server did not accept this token. Enter another.'
      : 'This server needs an API token.',
  ),
);

/** Stop and remove the view, forget the token, and ask for one. */
function askForToken(message) {
  current.abort();
  fill(view);
  say(null);
  token.forget();
  forgetButton.hidden = true;
  tokenMessage.textContent = message;
  tokenForm.hidden = false;
  tokenInput.value = '';
  tokenInput.focus();
}

/** Say something above the view (an action's result, a failure); `null` hides it. */
function say(text, kind = 'info') {
  notice.hidden = text === null;
  notice.className = kind;
  notice.textContent = text ?? '';
}

const ROUTES = [
  [
    /^#\/task\/([^/]+)\/(.+)$/,
    (match, context) => taskView(context, safeDecode(match[1]), safeDecode(match[2])),
  ],
  [/^#\/fleet$/, (_match, context) => fleetView(context)],
  [/^#\/schedules$/, (_match, context) => schedulesView(context)],
  [/^#\/tasks(?:\?(.*))?$/, (match, context) => tasksView(context, match[1] ?? '')],
];

async function show() {
  current.abort();
  current = new AbortController();
  const { signal } = current;
  say(null);
  const hash = location.hash === '' ? '#/tasks' : location.hash;
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('active', hash.startsWith(link.getAttribute('href')));
  }
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (route === undefined) {
    fill(view, h('p', {}, 'No such page. ', h('a', { href: '#/tasks' }, 'The tasks')));
    return;
  }
  try {
    await route[1](route[0].exec(hash), { api, root: view, signal, say });
  } catch (error) {
    if (signal.aborted) return;
    say(error.message, 'error');
  }
}

function safeDecode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  token.set(tokenInput.value.trim());
  tokenInput.value = '';
  tokenForm.hidden = true;
  forgetButton.hidden = false;
  show();
});

forgetButton.addEventListener('click', () => askForToken('Token forgotten.'));
window.addEventListener('hashchange', show);
forgetButton.hidden = token.get() === null;
show();
