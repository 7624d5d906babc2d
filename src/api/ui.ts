/**
 * The web dashboard's files at /ui/: static HTML, CSS and ES modules from src/ui, served without
 * a token because they hold no data (the page asks for the token and sends it with each API
 * request, as a header). A strict Content-Security-Policy allows scripts, styles and requests to
 * this server only: no inline script, no other origin, no framing.
 */
import path from 'node:path';
import express, { type RequestHandler, type Router } from 'express';
import {
  NotFoundError,
  RESPONSE_STATUSES,
  TASK_STATUSES,
  isTerminalResponse,
  isTerminalTask,
} from '../domain';
import { findPackageRoot } from '../package';

/** the dashboard's files: in the package's src/ui, whether run from src/ or from dist/ */
export const UI_DIR = path.join(findPackageRoot(), 'src', 'ui');

export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': UI_CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  });
  next();
};

/**
 * /ui/states.js, the states the page knows, made from the domain's lists so that the two never
 * differ.
 */
const STATES_MODULE = [
  `export const TASK_STATUSES = ${JSON.stringify(TASK_STATUSES)};`,
  `export const FINAL_TASK_STATUSES = ${JSON.stringify(TASK_STATUSES.filter(isTerminalTask))};`,
  `export const FINAL_RESPONSE_STATUSES = ${JSON.stringify(RESPONSE_STATUSES.filter(isTerminalResponse))};`,
  '',
].join('\n');

/** the page's files: security headers on all, the states module, then src/ui */
function uiFiles(): Router {
  const files = express.Router();
  files.use(securityHeaders);
  files.get('/states.js', (_req, res) => {
    res.type('text/javascript').set('Cache-Control', 'no-cache').send(STATES_MODULE);
  });
  files.use(
    express.static(UI_DIR, {
      index: 'index.html',
      redirect: false,
      dotfiles: 'ignore',
      // the files have no hashed names: a browser keeps them but asks whether they changed
      // (ETag, Last-Modified), so an upgrade of the server reaches it at once
      cacheControl: false,
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    }),
  );
  files.use(() => {
    throw new NotFoundError('not_found', 'no such file of the dashboard');
  });
  return files;
}

export function uiRoutes(): Router {
  const router = express.Router();
  // the page's links are relative (so that it works behind a proxy's path prefix): /ui must
  // become /ui/ before its index is served
  router.get('/ui', (req, res, next) => {
    if (new URL(req.originalUrl, 'http://x').pathname !== '/ui') return next();
    res.redirect(301, 'ui/');
  });
  router.use('/ui', uiFiles());
  return router;
}
