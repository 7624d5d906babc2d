#!/usr/bin/env node
/**
 * The screenshots of docs/dashboard.md and the README: a `tasker server` and a small fleet of
 * `tasker agent` processes on the local MariaDB and RabbitMQ (as the tests use them), a few
 * tasks in every state, and the dashboard photographed in the headless Chromium of the tests.
 * `npm run docs:screenshots` writes docs/images/dashboard-*.png.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { isTerminalTask } from '../src/domain';
import { findPackageRoot } from '../src/package';
import type { TaskWithResponses } from '../src/store';
import { callJson } from './support/api-client';
import { launchBrowser } from './support/browser';
import { startProcessStack, type ProcessStack } from './support/process-stack';
import { waitFor } from './support/waiting';

const IMAGES = path.join(findPackageRoot(), 'docs', 'images');
const TOKEN = 'screenshot-token-4d1c9a7e';
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Member {
  name: string;
  labels: string;
  /** how long its worker takes */
  seconds: number;
  /** how it ends up before the fleet is photographed: online unless said */
  then?: 'stopped' | 'offline';
}

const FLEET: Member[] = [
  { name: 'web1', labels: 'role=web,dc=fra1', seconds: 2 },
  { name: 'web2', labels: 'role=web,dc=fra1', seconds: 120 },
  { name: 'web3', labels: 'role=web,dc=ams1', seconds: 2, then: 'stopped' },
  { name: 'db1', labels: 'role=db,dc=fra1', seconds: 2 },
  { name: 'db2', labels: 'role=db,dc=ams1', seconds: 2, then: 'offline' },
];

async function post(processes: ProcessStack, type: string, body: unknown): Promise<void> {
  const answer = await callJson(`${processes.url}/${type}`, 'POST', body, AUTH);
  if (answer.status !== 201) throw new Error(`POST ${type}: ${answer.status}`);
}

function taskUntil(
  processes: ProcessStack,
  type: string,
  identifier: string,
  done: (task: TaskWithResponses) => boolean,
): Promise<TaskWithResponses> {
  const read = async () =>
    (
      await callJson<TaskWithResponses>(
        `${processes.url}/${type}/${identifier}`,
        'GET',
        undefined,
        AUTH,
      )
    ).body;
  return waitFor(read, done, 60_000, `${type}/${identifier}`);
}

const row = (task: TaskWithResponses, endpoint: string) =>
  task.taskResponseList.find((response) => response.endpoint === endpoint);

/** Tasks that end DONE, FAILED and CANCELLED, and a rollout caught in its first wave. */
async function makeTasks(processes: ProcessStack): Promise<void> {
  await post(processes, 'worker', { identifier: 'hotfix-7', endpoints: ['web1', 'db1'] });
  await post(processes, 'backup', { identifier: 'nightly-db', endpoints: ['db1'] });
  await post(processes, 'worker', { identifier: 'cleanup-tmp', endpoints: ['web2'] });
  await callJson(
    `${processes.url}/worker/cleanup-tmp/cancel`,
    'POST',
    { reason: 'not needed' },
    AUTH,
  );
  for (const [type, identifier] of [
    ['worker', 'hotfix-7'],
    ['backup', 'nightly-db'],
    ['worker', 'cleanup-tmp'],
  ] as const) {
    await taskUntil(processes, type, identifier, (task) => isTerminalTask(task.task.status));
  }
  await post(processes, 'worker', {
    identifier: 'release-4.2',
    payload: { version: '4.2' },
    endpoints: ['web1', 'web2', 'web3', 'db1'],
    rollout: { batch: 2 },
  });
  await taskUntil(
    processes,
    'worker',
    'release-4.2',
    (task) =>
      row(task, 'web1')?.status === 'DONE' && (row(task, 'web2')?.progress?.current ?? 0) >= 5,
  );
}

/** Bring the fleet to its final look: one agent stopped, one gone without a word. */
async function thinFleet(processes: ProcessStack): Promise<void> {
  for (const member of FLEET) {
    const agent = processes.agents.get(member.name);
    if (member.then === 'stopped') await agent?.stop();
    if (member.then === 'offline') await agent?.stop('SIGKILL');
  }
}

async function shoot(page: Page, name: string): Promise<void> {
  const file = path.join(IMAGES, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`wrote ${path.relative(findPackageRoot(), file)}`);
}

async function main(): Promise<void> {
  mkdirSync(IMAGES, { recursive: true });
  const processes = await startProcessStack([`api.tokens=${TOKEN}`, 'agent.heartbeat=1s']);
  const browser = await launchBrowser({ width: 1200, height: 720 });
  try {
    for (const member of FLEET) {
      await processes.startAgent(member.name, ['--set', `agent.labels=${member.labels}`], {
        WORKER_SECONDS: String(member.seconds),
      });
    }
    await makeTasks(processes);
    const page = await browser.context.newPage();
    await page.goto(`${processes.url}/ui/#/tasks`);
    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open' }).click();
    await page.locator('tr[data-task="worker/release-4.2"]').waitFor();
    await shoot(page, 'dashboard-tasks.png');

    await page.goto(`${processes.url}/ui/#/task/worker/release-4.2`);
    await page.locator('.cell[data-endpoint="web1"]').click();
    await page.locator('.detail pre.json', { hasText: 'yippie' }).waitFor();
    await shoot(page, 'dashboard-task.png');

    await thinFleet(processes);
    await page.goto(`${processes.url}/ui/#/fleet`);
    await page.locator('tr[data-endpoint="web3"][data-status="stopped"]').waitFor();
    await page
      .locator('tr[data-endpoint="db2"][data-status="offline"]')
      .waitFor({ timeout: 30_000 });
    await shoot(page, 'dashboard-fleet.png');
  } finally {
    await browser.close();
    await processes.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
