/**
 * The POST body: `{identifier, payload?, endpoints?}`, checked field by field with errors that
 * name the field. Nothing is written for a body that fails here.
 */
import {
  TaskerError,
  ValidationError,
  checkEndpoint,
  MAX_JSON_DEPTH,
  isPlainObject,
  nestsDeeperThan,
  readString,
  rejectUnknownKeys,
  type Fail,
} from '../domain';

export interface CreateTaskBody {
  identifier: string;
  payload: unknown;
  /** null when the client named no endpoints: a broadcast to every subscriber */
  endpoints: string[] | null;
}

export interface BodyLimits {
  maxIdentifierLength: number;
  maxPayloadBytes: number;
  maxEndpoints: number;
}

const fail: Fail = (path, problem) => new ValidationError(`${path} ${problem}`, path);

export function parseCreateTaskBody(body: unknown, limits: BodyLimits): CreateTaskBody {
  if (!isPlainObject(body)) throw new ValidationError('request body must be a JSON object');
  rejectUnknownKeys(body, ['identifier', 'payload', 'endpoints'], '', fail);
  const identifier = readString(body, 'identifier', '', fail, {
    maxLength: limits.maxIdentifierLength,
  });

  const payload = body.payload ?? null;
  if (nestsDeeperThan(payload, MAX_JSON_DEPTH)) {
    throw fail('payload', `nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`);
  }
  const payloadBytes = Buffer.byteLength(JSON.stringify(payload), 'utf8');
  if (payloadBytes > limits.maxPayloadBytes) {
    throw new TaskerError(
      'payload_too_large',
      `payload is ${payloadBytes} bytes as JSON; the limit is ${limits.maxPayloadBytes}`,
      { details: { field: 'payload' } },
    );
  }

  let endpoints: string[] | null = null;
  const raw = body.endpoints;
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw)) throw fail('endpoints', 'must be an array of endpoint names');
    // an empty list is most often a filter that matched nothing, not a wish to broadcast
    if (raw.length === 0) {
      throw fail('endpoints', 'must name at least one endpoint (omit it to broadcast)');
    }
    if (raw.length > limits.maxEndpoints) {
      throw fail('endpoints', `lists ${raw.length} endpoints; the limit is ${limits.maxEndpoints}`);
    }
    const seen = new Map<string, number>();
    endpoints = raw.map((value, i) => {
      const endpoint = checkEndpoint(value, `endpoints[${i}]`, fail);
      const first = seen.get(endpoint);
      if (first !== undefined) throw fail(`endpoints[${i}]`, `repeats endpoints[${first}]`);
      seen.set(endpoint, i);
      return endpoint;
    });
  }
  return { identifier, payload, endpoints };
}
