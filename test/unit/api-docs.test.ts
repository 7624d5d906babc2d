/**
 * docs/api.md's table of routes against the OpenAPI document: every operation of the document
 * (of a server that also serves /metrics) is in the table, and the table lists nothing else but
 * the web dashboard's page (`GET /ui/`: files for a browser, not an operation of the API).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openApiDocument } from '../../src/api/openapi';
import { loadConfig } from '../../src/config';

const API_MD = readFileSync(join(__dirname, '..', '..', 'docs', 'api.md'), 'utf8');

/** `GET /<taskType>/<identifier>` of the table as `get /{type}/{identifier}` */
function routesOfTable(markdown: string): string[] {
  const rows = markdown.split('\n').filter((line) => line.startsWith('| `'));
  return rows.flatMap((row) => {
    const cell = row.split(' | ')[0] as string;
    return [...cell.matchAll(/`([A-Z]+) (\/[^`]*)`/g)].map(([, method, path]) => {
      const template = (path as string).replace('<taskType>', '{type}').replace(/<(\w+)>/g, '{$1}');
      return `${(method as string).toLowerCase()} ${template}`;
    });
  });
}

it('lists in its table of routes exactly the operations of the OpenAPI document', () => {
  const config = loadConfig({ mode: 'test', env: {}, flags: {} });
  const doc = openApiDocument(config, { metrics: true }) as { paths: Record<string, object> };
  const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => `${method} ${path}`),
  );
  const table = routesOfTable(API_MD).filter((route) => route !== 'get /ui/');
  expect(routesOfTable(API_MD)).toContain('get /ui/');
  expect(table.length).toBeGreaterThan(20);
  expect(new Set(table).size).toBe(table.length);
  expect([...table].sort()).toEqual([...operations].sort());
});
