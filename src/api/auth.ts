/**
 * Bearer-token authentication. Tokens come from config; comparison is constant-time over
 * SHA-256 digests so neither content nor length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { TaskerError } from '../domain';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export function requireBearerToken(tokens: readonly string[]): RequestHandler {
  const accepted = tokens.map(digest);
  return (req, _res, next) => {
    if (accepted.length === 0) return next();
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) {
      throw new TaskerError('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
    }
    const presented = digest(match[1] as string);
    let ok = false;
    for (const candidate of accepted) ok = timingSafeEqual(candidate, presented) || ok;
    if (!ok) throw new TaskerError('unauthorized', 'invalid bearer token');
    next();
  };
}
