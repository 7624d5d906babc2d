/**
 * The web dashboard (/ui) in a real headless Chromium, against the built `tasker server` (with
 * an API token) and two `tasker agent` processes (console1, console2) on MariaDB and RabbitMQ:
 * the page and its headers, the token asked once, a task posted through the API turning DONE on
 * screen as it happens, a cancel clicked in the page stopping a running handler on its agent, a
 * failed endpoint and its retry, an endpoint waiting to run again, the schedules, and a wrong
 * token seeing nothing but the message that it was refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { TASK_STATUSES } from '../../src/domain';
import type { TaskWithResponses } from '../../src/store';
import { callJson } from '../support/api-client';
import { launchBrowser, type Browser } from '../support/browser';
import type { Child } from '../support/child-processes';
import { startProcessStack, type ProcessStack } from '../support/process-stack';

const TOKEN = 'dashboard-test-token-5f0c2e';
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** how long the page may take to show what the API says (the handlers take 2 s) */
const SHOWN_WITHIN_MS = 30_000;

// worker and backup (the built-in handlers), and mirror: a command that asks to be run again
// later, every time
const CONFIG = `
task_types:
  worker:
  backup:
  mirror:
    retry: { max_attempts: 3, delay: 5m }
agent:
  handlers:
    mirror:
      command: ["/bin/sh", "-c", "echo the mirror is busy >&2; exit 75"]
`;

let processes: ProcessStack;
let url: string;
let browser: Browser;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-dashboard-'));
  const config = join(dir, 'tasker.yaml');
  writeFileSync(config, CONFIG);
  processes = await startProcessStack([`api.tokens=${TOKEN}`], ['--config', config]);
  url = processes.url;
  for (const endpoint of ['console1', 'console2']) await processes.startAgent(endpoint);
  browser = await launchBrowser();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await processes?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** What went wrong in the page: uncaught errors, and console errors but the 401s asked for. */
function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().includes('status of 401')) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return problems;
}

/** A new tab on the dashboard at `hash`, the token entered when it asks for one. */
async function openDashboard(hash: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.context.newPage();
  const problems = pageProblems(page);
  await page.goto(`${url}/ui/${hash}`);
  await page.locator('#token-form').waitFor();
  await page.locator('#token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open' }).click();
  return { page, problems };
}

async function getTask(type: string, identifier: string): Promise<TaskWithResponses> {
  return (await callJson<TaskWithResponses>(`${url}/${type}/${identifier}`, 'GET', undefined, AUTH))
    .body;
}

function postTask(type: string, body: unknown) {
  return callJson<{ status: string }>(`${url}/${type}`, 'POST', body, AUTH);
}

/** Post a task through the API, and open its page. */
async function postAndOpen(type: string, body: { identifier: string; [key: string]: unknown }) {
  const posted = await postTask(type, body);
  expect(posted.status).toBe(201);
  return openDashboard(`#/task/${type}/${body.identifier}`);
}

/** Nothing went wrong in the page all along; close it. */
async function closeClean({ page, problems }: { page: Page; problems: string[] }): Promise<void> {
  expect(problems).toEqual([]);
  await page.close();
}

/** The text of the first line that `child` logged with this `msg`, parsed. */
function logged(child: Child, msg: string): Record<string, unknown> {
  const line = child
    .output()
    .split('\n')
    .find((text) => text.includes(`"msg":"${msg}"`));
  if (line === undefined)
    throw new Error(`${child.name} never logged "${msg}":\n${child.output()}`);
  return JSON.parse(line) as Record<string, unknown>;
}

it('serves the page with a strict policy, asks for the token once and keeps it for the tab', async () => {
  const page = await browser.context.newPage();
  const problems = pageProblems(page);
  const answer = await page.goto(`${url}/ui`);
  expect(page.url()).toBe(`${url}/ui/`);
  const headers = answer?.headers() ?? {};
  expect(headers['content-security-policy']).toContain("script-src 'self'");
  expect(headers['content-security-policy']).toContain("default-src 'none'");
  expect(headers['content-security-policy']).not.toContain('unsafe-inline');
  expect(headers['cache-control']).toBe('no-cache');
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(await page.locator('script:not([src])').count()).toBe(0);

  await page.locator('#token-message', { hasText: 'This server needs an API token.' }).waitFor();
  await page.locator('#token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open' }).click();
  await page.getByRole('heading', { name: 'Tasks' }).waitFor();
  await page.getByRole('link', { name: 'Fleet' }).click();
  await page.locator('tr[data-endpoint="console1"][data-status="online"]').waitFor();
  await page.locator('tr[data-endpoint="console2"][data-status="online"]').waitFor();

  // a reload keeps the token: the form is not shown again
  await page.reload();
  await page.locator('tr[data-endpoint="console1"]').waitFor();
  expect(await page.locator('#token-form').isHidden()).toBe(true);

  // a file that is not the dashboard's is a 404, with no token needed to find that out
  const missing = await fetch(`${url}/ui/missing.js`);
  expect(missing.status).toBe(404);
  await closeClean({ page, problems });
});

it('shows a task posted through the API turn DONE, live, without reloading', async () => {
  const { page, problems } = await openDashboard('#/tasks?type=worker');
  await page.getByRole('heading', { name: 'Tasks' }).waitFor();
  // the states the page offers are the server's own (/ui/states.js)
  expect(await page.locator('select[name="status"] option').allTextContents()).toEqual([
    'any status',
    ...TASK_STATUSES,
  ]);
  await page.evaluate('window.sameDocument = "yes"');

  const posted = await postTask('worker', {
    identifier: 'dash-done',
    payload: { seconds: 2 },
    endpoints: ['console1', 'console2'],
  });
  expect(posted.status).toBe(201);
  const row = page.locator('tr[data-task="worker/dash-done"]');
  await row.locator('.badge', { hasText: 'DONE' }).waitFor({ timeout: SHOWN_WITHIN_MS });
  expect(await row.textContent()).toContain('2 done, 0 failed, 0 pending of 2');

  await row.getByRole('link', { name: 'dash-done' }).click();
  await page.locator('.task-status', { hasText: 'DONE' }).waitFor();
  await page.locator('.cell[data-endpoint="console2"][data-status="DONE"]').waitFor();
  await page.locator('.cell[data-endpoint="console1"][data-status="DONE"]').click();
  await page.locator('.detail pre.json', { hasText: 'yippie' }).waitFor();
  expect(await page.locator('.detail h2').textContent()).toBe('console1 DONE');

  // the same document all along: what changed on screen came through the stream
  expect(await page.evaluate('window.sameDocument')).toBe('yes');
  await closeClean({ page, problems });
});

it('sends a cancel clicked in the page to the agent, which stops the running handler', async () => {
  const { page, problems } = await postAndOpen('worker', {
    identifier: 'dash-cancel',
    payload: { seconds: 300 },
    endpoints: ['console1'],
  });
  await page
    .locator('.cell[data-endpoint="console1"][data-status="RUNNING"]')
    .waitFor({ timeout: SHOWN_WITHIN_MS });

  await page.getByRole('button', { name: 'Cancel task' }).click();
  await page.getByRole('button', { name: 'Yes, cancel' }).click();
  await page.locator('.cell[data-endpoint="console1"][data-status="CANCELLED"]').waitFor({
    timeout: SHOWN_WITHIN_MS,
  });
  await page.locator('.task-status', { hasText: 'CANCELLED' }).waitFor();
  expect(await page.getByRole('button', { name: 'Cancel task' }).isDisabled()).toBe(true);

  // the agent heard the cancel while the handler ran, and reported the run cancelled
  const agent = processes.agents.get('console1') as Child;
  await agent.waitForOutput('"msg":"task cancelled"');
  expect(logged(agent, 'task cancelled')).toMatchObject({ running: true });
  const body = await getTask('worker', 'dash-cancel');
  expect(body.task.status).toBe('CANCELLED');
  expect(body.taskResponseList[0]).toMatchObject({ endpoint: 'console1', status: 'CANCELLED' });
  expect(body.taskResponseList[0]?.errmsg).toContain('cancelled from the dashboard');
  await closeClean({ page, problems });
});

it("shows a failed endpoint's error, and runs it again in a new round with Retry", async () => {
  const { page, problems } = await postAndOpen('backup', {
    identifier: 'dash-retry',
    endpoints: ['console2'],
  });
  const cell = page.locator('.cell[data-endpoint="console2"]');
  await page.locator('.task-status', { hasText: 'FAILED' }).waitFor({ timeout: SHOWN_WITHIN_MS });
  expect(await cell.locator('.error').textContent()).toBe('errnr 32: could not backup!');

  await page.getByRole('button', { name: 'Retry' }).click();
  await page.locator('#notice', { hasText: 'Round 2 started.' }).waitFor();
  // the new round runs and fails again: the page follows it to its end
  await page.locator('.task-head dt:text-is("round") + dd', { hasText: /^2$/ }).waitFor();
  await page.locator('.task-status', { hasText: 'FAILED' }).waitFor({ timeout: SHOWN_WITHIN_MS });
  await cell.click();
  await page.locator('.detail .history li', { hasText: 'round 1, attempt 1: FAILED' }).waitFor();
  const body = await getTask('backup', 'dash-retry');
  expect(body.task).toMatchObject({ status: 'FAILED', round: 2 });
  await closeClean({ page, problems });
});

it("shows an endpoint waiting to run again: its run's error, and when it runs next", async () => {
  const { page, problems } = await postAndOpen('mirror', {
    identifier: 'dash-mirror',
    endpoints: ['console1'],
  });
  const cell = page.locator('.cell[data-endpoint="console1"][data-status="RETRYING"]');
  await cell.waitFor({ timeout: SHOWN_WITHIN_MS });
  expect(await cell.locator('.error').textContent()).toBe('errnr 75: the mirror is busy');
  const body = await getTask('mirror', 'dash-mirror');
  expect(await cell.locator('time').getAttribute('datetime')).toBe(
    body.taskResponseList[0]?.next_attempt_at,
  );
  expect(await page.locator('.task-status').textContent()).toBe('SENT');

  // not left waiting for five minutes
  await page.getByRole('button', { name: 'Cancel task' }).click();
  await page.getByRole('button', { name: 'Yes, cancel' }).click();
  await page.locator('.task-status', { hasText: 'CANCELLED' }).waitFor({
    timeout: SHOWN_WITHIN_MS,
  });
  await closeClean({ page, problems });
});

it('lists the schedules, each linking to the tasks it made', async () => {
  const made = await callJson(
    `${url}/schedules`,
    'POST',
    { name: 'dash-hourly', type: 'worker', every: '1h', endpoints: ['console1'] },
    AUTH,
  );
  expect(made.status).toBe(201);
  const { page, problems } = await openDashboard('#/schedules');
  const row = page.locator('tr[data-schedule="dash-hourly"]');
  await row.waitFor();
  expect(await row.locator('td').allTextContents()).toEqual([
    'dash-hourly',
    'worker',
    'every 1 h',
    'console1',
    'active',
    expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
    '–',
    '',
  ]);
  await row.getByRole('link', { name: 'dash-hourly' }).click();
  await page.locator('.empty', { hasText: 'No tasks.' }).waitFor();
  expect(new URL(page.url()).hash).toBe('#/tasks?type=worker&identifier=dash-hourly%40');
  expect(await page.locator('input[name="identifier"]').inputValue()).toBe('dash-hourly@');
  await closeClean({ page, problems });
});

it('shows a wrong token nothing but the message that it was refused', async () => {
  const statuses: number[] = [];
  const page = await browser.context.newPage();
  page.on('response', (response) => {
    if (!new URL(response.url()).pathname.startsWith('/ui/')) statuses.push(response.status());
  });
  await page.goto(`${url}/ui/#/tasks`);
  await page.locator('#token').fill('not-the-right-token-at-all');
  await page.getByRole('button', { name: 'Open' }).click();
  await page
    .locator('#token-message', { hasText: 'Token refused: the server did not accept this token.' })
    .waitFor();

  expect(await page.locator('#view').evaluate((view) => view.childElementCount)).toBe(0);
  const text = await page.locator('body').innerText();
  for (const data of ['dash-done', 'dash-cancel', 'console1', 'worker']) {
    expect(text).not.toContain(data);
  }
  // every API request was refused, and the refused token is not kept
  expect(statuses.length).toBeGreaterThan(0);
  expect(new Set(statuses)).toEqual(new Set([401]));
  expect(await page.evaluate('sessionStorage.getItem("tasker.token")')).toBeNull();
  await page.close();
});
