/**
 * Knowing the fleet end to end (part of the one table in scenarios.ts): the registry the agents'
 * heartbeats keep, its API, and tasks addressed by selector. On both stacks, console1 and
 * console2 serve every type; on MariaDB and RabbitMQ, further `tasker agent` processes with
 * labels and a 1 s heartbeat are started, stopped, killed and restarted.
 */
import type { EndpointPage, EndpointView, TaskView, TaskWithResponses } from '../../src/store';
import { VERSION } from '../../src/package';
import { waitFor } from '../support/waiting';
import { call } from './operate-scenarios';
import type { E2eStack, ProcessStack, ScenarioEntry } from './scenarios';

interface EndpointDetail {
  name: string;
  registration: EndpointView | null;
  recent_tasks: Array<{ type: string; identifier: string; status: string }>;
}

const endpoint = async (stack: E2eStack, name: string) =>
  (await call<EndpointDetail>(stack, 'GET', `endpoints/${name}`)).body;

/** Wait until the registry shows `name` as `status`. */
function until(stack: E2eStack, name: string, status: string, ms = 15_000) {
  return waitFor(
    () => endpoint(stack, name),
    (found) => found.registration?.status === status,
    ms,
    `${name} ${status}`,
  );
}

const processes = (stack: E2eStack) => stack as ProcessStack;

/** An agent process for `name` with these labels, beating every second. */
function labelled(stack: E2eStack, name: string, labels: string) {
  return processes(stack).startAgent(name, [
    '--set',
    `agent.labels=${labels}`,
    '--set',
    'agent.heartbeat=1s',
  ]);
}

const ONLY_PROCESSES = 'it starts, stops and kills agent processes of their own';

export const FLEET_SCENARIOS: ScenarioEntry[] = [
  {
    name: '"*" addresses every registered endpoint of the type and keeps the selector',
    run: async (stack) => {
      const posted = (await call<TaskView>(stack, 'POST', 'worker', {
        identifier: 'fleet-star',
        payload: { seconds: 0 },
        endpoints: '*',
      })) as { status: number; body: TaskView };
      expect(posted.status).toBe(201);
      expect(posted.body.selector).toBe('*');
      expect(posted.body.endpoints).toEqual(expect.arrayContaining(['console1', 'console2']));
      // a client's retry gets the same task, whatever the fleet is now
      const again = await call<TaskView>(stack, 'POST', 'worker', {
        identifier: 'fleet-star',
        payload: { seconds: 0 },
        endpoints: '*',
      });
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(posted.body.id);
      await waitFor(
        () => stack.api.get('worker', 'fleet-star'),
        (task) =>
          ['console1', 'console2'].every(
            (name) => task.taskResponseList.find((r) => r.endpoint === name)?.status === 'DONE',
          ),
        20_000,
        'fleet-star done on console1 and console2',
      );
    },
  },
  {
    name: 'the registry lists every agent online, with its types, versions and a summary',
    run: async (stack) => {
      const { status, body } = await call<EndpointPage>(stack, 'GET', 'endpoints?type=worker');
      expect(status).toBe(200);
      const consoles = body.endpoints.filter((e) => ['console1', 'console2'].includes(e.name));
      expect(consoles).toHaveLength(2);
      for (const found of consoles) {
        expect(found).toMatchObject({ status: 'online', version: VERSION, capacity: 4 });
        expect(found.types).toEqual(expect.arrayContaining(['worker', 'backup']));
        // worker exports its version; backup does not, so it is known by its file's hash
        expect(found.handlers.worker).toBe('1');
        expect(found.handlers.backup).toMatch(/^sha256:[0-9a-f]{12}$/);
      }
      expect(body.summary.versions[VERSION]).toBeGreaterThanOrEqual(2);
      expect(body.summary.handlers.worker?.['1']).toBeGreaterThanOrEqual(2);
      expect(body.summary.statuses.online).toBeGreaterThanOrEqual(2);

      const one = await endpoint(stack, 'console1');
      expect(one.registration?.name).toBe('console1');
      // newest first: the "*" task of the scenario before is the latest
      expect(one.recent_tasks[0]).toMatchObject({
        type: 'worker',
        identifier: 'fleet-star',
        status: 'DONE',
        task_status: expect.any(String),
      });
    },
  },
  {
    name: 'a selector that matches nothing is a 422 naming it, and writes no task',
    run: async (stack) => {
      const answer = await call<{ error: { code: string; message: string } }>(
        stack,
        'POST',
        'worker',
        { identifier: 'fleet-none', endpoints: { labels: { role: 'nowhere' } } },
      );
      expect(answer.status).toBe(422);
      expect(answer.body.error.code).toBe('selector_matched_nothing');
      expect(answer.body.error.message).toContain('role=nowhere');
      expect((await call(stack, 'GET', 'worker/fleet-none')).status).toBe(404);
    },
  },
  {
    name: 'an agent says hello with its labels, goodbye when stopped, and comes back relabelled',
    processesOnly: ONLY_PROCESSES,
    run: async (stack) => {
      const first = await labelled(stack, 'fleet-web1', 'role=web,dc=fra1');
      const online = await until(stack, 'fleet-web1', 'online');
      expect(online.registration).toMatchObject({
        labels: { role: 'web', dc: 'fra1' },
        heartbeat_ms: 1000,
      });
      expect(await first.stop('SIGTERM')).toBe(0);
      const stopped = await until(stack, 'fleet-web1', 'stopped', 5000);
      expect(Date.parse(stopped.registration?.since ?? '')).toBeGreaterThan(
        Date.parse(online.registration?.last_seen_at ?? ''),
      );
      // stopped is not offline: it stays stopped, however long it is silent
      await new Promise((resolve) => setTimeout(resolve, 3500));
      expect((await endpoint(stack, 'fleet-web1')).registration?.status).toBe('stopped');

      await labelled(stack, 'fleet-web1', 'role=db');
      const back = await until(stack, 'fleet-web1', 'online');
      expect(back.registration?.labels).toEqual({ role: 'db' });
      expect(back.registration?.first_seen_at).toBe(online.registration?.first_seen_at);
      expect(back.registration?.pid).not.toBe(online.registration?.pid);
    },
  },
  {
    name: 'an agent killed with SIGKILL goes offline once three heartbeats are missed',
    processesOnly: ONLY_PROCESSES,
    run: async (stack) => {
      const agent = await labelled(stack, 'fleet-web2', 'role=web');
      await until(stack, 'fleet-web2', 'online');
      const killed = Date.now();
      await agent.stop('SIGKILL');
      // online still for a while: one missed beat is no outage
      expect((await endpoint(stack, 'fleet-web2')).registration?.status).toBe('online');
      const offline = await until(stack, 'fleet-web2', 'offline', 10_000);
      expect(Date.now() - killed).toBeGreaterThanOrEqual(2000);
      expect(Date.parse(offline.registration?.since ?? '')).toBeGreaterThan(killed);
      const list = await call<EndpointPage>(
        stack,
        'GET',
        'endpoints?status=offline&label=role=web',
      );
      expect(list.body.endpoints.map((e) => e.name)).toContain('fleet-web2');
    },
  },
  {
    name: 'a selector picks the online web endpoints; a PENDING row says its agent is offline',
    processesOnly: ONLY_PROCESSES,
    run: async (stack) => {
      await labelled(stack, 'fleet-web3', 'role=web');
      await until(stack, 'fleet-web3', 'online');
      const online = await call<TaskView>(stack, 'POST', 'worker', {
        identifier: 'fleet-web-online',
        payload: { seconds: 0 },
        endpoints: { labels: { role: 'web' }, status: 'online' },
      });
      expect(online.status).toBe(201);
      expect(online.body.endpoints).toEqual(['fleet-web3']);
      expect(online.body.selector).toEqual({ labels: { role: 'web' }, status: 'online' });
      expect((await stack.api.terminal('worker', 'fleet-web-online')).task.status).toBe('DONE');

      const all = await call<TaskView>(stack, 'POST', 'worker', {
        identifier: 'fleet-web-all',
        payload: { seconds: 0 },
        endpoints: { labels: { role: 'web' } },
      });
      expect([...all.body.endpoints].sort()).toEqual(['fleet-web2', 'fleet-web3']);
      const waiting = await waitFor(
        () => stack.api.get('worker', 'fleet-web-all'),
        (task) => task.taskResponseList.some((r) => r.status === 'DONE'),
        15_000,
        'fleet-web3 done',
      );
      const pending = waiting.taskResponseList.find((r) => r.endpoint === 'fleet-web2');
      expect(pending).toMatchObject({ status: 'PENDING', registry: { status: 'offline' } });

      // a named endpoint no agent ever served
      await stack.api.post('worker', { identifier: 'fleet-ghost', endpoints: ['fleet-ghost'] });
      const ghost: TaskWithResponses = await stack.api.get('worker', 'fleet-ghost');
      expect(ghost.taskResponseList[0]).toMatchObject({
        status: 'PENDING',
        registry: { status: 'never_seen' },
      });
    },
  },
  {
    name: 'DELETE forgets a decommissioned endpoint, and refuses one that is online',
    processesOnly: ONLY_PROCESSES,
    run: async (stack) => {
      expect((await call(stack, 'DELETE', 'endpoints/fleet-web2')).status).toBe(204);
      const forgotten = await endpoint(stack, 'fleet-web2');
      // its tasks remain, so it is still found, with no registration
      expect(forgotten.registration).toBeNull();
      expect(forgotten.recent_tasks.map((t) => t.identifier)).toContain('fleet-web-all');
      const list = await call<EndpointPage>(stack, 'GET', 'endpoints');
      expect(list.body.endpoints.map((e) => e.name)).not.toContain('fleet-web2');

      const refused = await call<{ error: { code: string } }>(
        stack,
        'DELETE',
        'endpoints/fleet-web3',
      );
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('endpoint_online');
      expect((await call(stack, 'DELETE', 'endpoints/fleet-nobody')).status).toBe(404);
      // the scenarios after these know console1 and console2 only
      for (const name of ['fleet-web1', 'fleet-web3']) {
        expect(await processes(stack).agent(name).stop('SIGTERM')).toBe(0);
      }
    },
  },
];
