/**
 * Accepting a task, after the API has checked the request: write it (with one PENDING row per
 * addressed endpoint and its outbox row, in one transaction), publish it, and mark it SENT once
 * the broker confirmed it. When the broker is away or slow to confirm, the task is answered
 * CREATED and left to the relay, which its outbox row already tells to publish it.
 */
import type { TaskBroker } from '../broker';
import type { TaskerConfig, TaskTypeConfig } from '../config';
import {
  TaskerError,
  describeSelector,
  isHeldTask,
  refText,
  type DependencyPolicy,
  type TaskRef,
  selectorText,
  type Rollout,
  type Selector,
  type Share,
} from '../domain';
import type { Logger } from '../log';
import { secondsSince, type AcceptStep } from '../metrics';
import {
  TaskWriter,
  findTaskIds,
  findTaskRow,
  reachesTask,
  selectEndpoints,
  sentMarker,
  taskEndpoints,
  type Confirmed,
  type CreateResult,
  type Db,
  type Publishers,
  type TaskRow,
} from '../store';

export interface TaskRequest {
  identifier: string;
  payload: unknown;
  /** the addressed endpoints, or null for a broadcast (or a selector) */
  endpoints: string[] | null;
  /** pick the endpoints from the registry at submit, instead of naming them */
  selector?: Selector | null;
  /** waves: undefined takes the task type's, null sends all at once */
  rollout?: Rollout | null;
  /** DONE endpoints that decide the task DONE: undefined takes the type's, null means all */
  successThreshold?: Share | null;
  /** hold the task SCHEDULED until then: the scheduler releases it */
  notBefore?: Date | null;
  /** hold the task WAITING until these stored tasks are final */
  after?: TaskRef[];
  onDependencyFailure?: DependencyPolicy;
  /** 0 to 9: undefined takes the type's */
  priority?: number;
}

export interface Accepted {
  task: TaskRow;
  /** false when the same task was accepted before (a client's retry) */
  created: boolean;
}

export interface IntakeDeps {
  db: Db;
  broker: TaskBroker;
  config: TaskerConfig;
  publish: Publishers;
  log: Logger;
  /** a task could not be published at once; the relay should look soon */
  onPublishDeferred?: () => void;
  /** a task was accepted, as it is now (SENT, or CREATED when left to the relay) */
  onAccepted?: (task: TaskRow) => void;
  /** how long the request waited for one durable step (the metrics time them) */
  onStep?: (step: AcceptStep, seconds: number) => void;
}

export class Intake {
  private readonly tasks: TaskWriter;
  private readonly markSent: (confirmed: Confirmed) => Promise<void>;

  constructor(private readonly deps: IntakeDeps) {
    this.tasks = new TaskWriter(deps.db);
    this.markSent = sentMarker(deps.db);
  }

  async accept(type: TaskTypeConfig, request: TaskRequest): Promise<Accepted> {
    const { config, log } = this.deps;
    const now = new Date();
    const selector = request.selector ?? null;
    const endpoints =
      selector === null ? request.endpoints : await this.select(type, request.identifier, selector);
    const after = request.after === undefined ? null : await this.dependencies(type, request);
    const writing = process.hrtime.bigint();
    const result = await this.tasks.create({
      type: type.name,
      identifier: request.identifier,
      payload: request.payload,
      endpoints,
      selector,
      notBefore: request.notBefore ?? null,
      after,
      ...(request.onDependencyFailure === undefined
        ? {}
        : { onDependencyFailure: request.onDependencyFailure }),
      deliverBy: new Date(now.getTime() + type.waitForEndpointsTimeoutMs),
      executionTimeoutMs: type.executionTimeoutMs,
      // a type's rollout applies to the tasks that name their endpoints
      rollout:
        request.rollout !== undefined ? request.rollout : endpoints === null ? null : type.rollout,
      successThreshold:
        request.successThreshold !== undefined ? request.successThreshold : type.successThreshold,
      priority: request.priority ?? type.priority,
      now,
      // the relay leaves the task alone while this request may still publish it itself
      outboxDelayMs: config.api.publishWaitMs + config.broker.confirmTimeoutMs + 1000,
    });
    const { task, created } = result;
    if (!created) return { task, created };
    this.deps.onStep?.('write', secondsSince(writing));
    if (isHeldTask(task.status)) {
      // its time or its dependencies have not come: the scheduler releases it into the outbox
      log.info('task held', { task_id: task.id, type: task.type, status: task.status });
      this.deps.onAccepted?.(task);
      return { task, created };
    }
    let accepted = task;
    if (await this.publishNow(result)) {
      accepted = { ...task, status: 'SENT', sent_at: new Date(), version: task.version + 1 };
    } else {
      this.deps.onPublishDeferred?.();
    }
    log.info('task accepted', { task_id: task.id, type: task.type, status: accepted.status });
    this.deps.onAccepted?.(accepted);
    return { task: accepted, created };
  }

  /**
   * The stored tasks `after` names, with their ids: each must exist (422 naming it), and none
   * may be this task or come after it (a repost naming a later task would close a cycle).
   */
  private async dependencies(
    type: TaskTypeConfig,
    request: TaskRequest,
  ): Promise<Array<TaskRef & { id: number }>> {
    const { db } = this.deps;
    const refs = request.after ?? [];
    const self = refs.findIndex(
      (ref) => ref.type === type.name && ref.identifier === request.identifier,
    );
    if (self >= 0) {
      throw new TaskerError('dependency_cycle', `after[${self}] names this task itself`, {
        details: { field: `after[${self}]` },
      });
    }
    const ids = await findTaskIds(db, refs);
    const resolved = refs.map((ref, i) => {
      const id = ids[i];
      if (id === null || id === undefined) {
        throw new TaskerError(
          'unknown_dependency',
          `after[${i}] names ${refText(ref)}, which does not exist: post it first`,
          { details: { field: `after[${i}]` } },
        );
      }
      return { ...ref, id };
    });
    const existing = await findTaskRow(db, type.name, request.identifier);
    const dependencyIds = resolved.map((ref) => ref.id);
    if (existing !== null && (await reachesTask(db, dependencyIds, Number(existing.id)))) {
      throw new TaskerError(
        'dependency_cycle',
        `${type.name}/${request.identifier} exists, and a task in after comes after it: ` +
          'waiting for it would never end',
        { details: { field: 'after' } },
      );
    }
    return resolved;
  }

  /**
   * The endpoints a selector picks now: the registry's, serving the type, that match. A client's
   * retry of a task already accepted gets that task's, whatever the fleet is now.
   */
  private async select(
    type: TaskTypeConfig,
    identifier: string,
    selector: Selector,
  ): Promise<string[]> {
    const { db, config } = this.deps;
    const existing = await findTaskRow(db, type.name, identifier);
    if (existing !== null && existing.selector === selectorText(selector)) {
      return taskEndpoints(existing) ?? [];
    }
    const picked = await selectEndpoints(db, type.name, selector);
    const described = describeSelector(selector);
    if (picked.length === 0) {
      throw new TaskerError(
        'selector_matched_nothing',
        selector === '*'
          ? `no registered endpoint serves ${type.name}: "*" picks every one that does`
          : `the selector ${described} matches no registered endpoint that serves ${type.name}`,
        { details: { field: 'endpoints', selector } },
      );
    }
    if (picked.length > config.api.maxEndpoints) {
      throw new TaskerError(
        'selector_matched_too_many',
        `the selector ${described} matches ${picked.length} endpoints; a task may address ` +
          `at most ${config.api.maxEndpoints} (api.max_endpoints)`,
        { details: { field: 'endpoints', selector } },
      );
    }
    return picked;
  }

  /** Publish and mark SENT, waiting at most `publish_wait`; false means "left to the relay". */
  private async publishNow({ task, publication, outboxId }: CreateResult): Promise<boolean> {
    const { broker, publish, config, log, onStep } = this.deps;
    if (!broker.isConnected || outboxId === null) return false;
    let started = process.hrtime.bigint();
    const confirmed = publish.task(task, publication, task.deliver_by).then(async () => {
      onStep?.('publish', secondsSince(started));
      started = process.hrtime.bigint();
      await this.markSent({ taskId: task.id, outboxId });
      onStep?.('mark', secondsSince(started));
      return true;
    });
    // cleared once answered: a pending timer would keep this request's promises for publish_wait
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), config.api.publishWaitMs).unref();
    });
    try {
      return await Promise.race([confirmed, timeout]);
    } catch (err) {
      log.warn('publish failed; the relay will retry', { task_id: task.id, err });
      return false;
    } finally {
      clearTimeout(timer);
      confirmed.catch(() => undefined);
    }
  }
}
