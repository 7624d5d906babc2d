/**
 * The OpenAPI 3.1 document of this server, served at GET /openapi.json: every route with its
 * parameters, request bodies (from the field tables the readers use, request-fields.ts) and
 * answers (response-schemas.ts). It is made from the server's configuration, so it names the
 * configured task types and this server's limits. It is served behind the API tokens, as GET
 * /types is: it lists the task types.
 */
import express, { type Router } from 'express';
import type { TaskerConfig } from '../config';
import { VERSION } from '../package';
import { ERROR_CODES } from './errors';
import { REQUEST_ID_HEADER, SANE_REQUEST_ID } from './request-id';
import { OPENAPI_PATH, operations, type Operation } from './openapi-paths';
import { fieldNames, type Fields, type JsonSchema } from './request-fields';
import { RESPONSE_SCHEMAS, errorSchema, ref } from './response-schemas';

export { OPENAPI_PATH } from './openapi-paths';

function objectOf(fields: Fields, config: TaskerConfig, requireFields: boolean): JsonSchema {
  const required = fieldNames(fields).filter((key) => requireFields && fields[key]?.required);
  return {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(fields).map(([key, field]) => [
        key,
        { ...field.schema(config), description: field.description },
      ]),
    ),
    ...(required.length === 0 ? {} : { required }),
    additionalProperties: false,
  };
}

function operationOf(op: Operation, config: TaskerConfig, secured: boolean): JsonSchema {
  const parameters: JsonSchema[] = [
    { $ref: '#/components/parameters/RequestId' },
    ...Object.entries(op.path ?? {}).map(([name, description]) => ({
      name,
      in: 'path',
      required: true,
      description,
      schema: name === 'type' ? { enum: Object.keys(config.taskTypes) } : { type: 'string' },
    })),
    ...Object.entries(op.query ?? {}).map(([name, field]) => ({
      name,
      in: 'query',
      description: field.description,
      schema: field.schema(config),
    })),
    ...(op.headers ?? []),
  ];
  const headers = { [REQUEST_ID_HEADER]: { $ref: '#/components/headers/RequestId' } };
  const responses: Record<string, JsonSchema> = {};
  for (const [status, [description, schema]] of Object.entries(op.answers)) {
    responses[status] = {
      description,
      headers,
      ...(schema === undefined ? {} : { content: { 'application/json': { schema } } }),
    };
  }
  for (const [status, [media, description]] of Object.entries(op.other ?? {})) {
    responses[status] = {
      description,
      headers,
      content: { [media]: { schema: { type: 'string' } } },
    };
  }
  if (secured && op.open !== true) {
    responses['401'] = {
      description: 'no valid bearer token',
      headers,
      content: json(ref('Error')),
    };
  }
  return {
    summary: op.summary,
    parameters,
    ...(op.body === undefined
      ? {}
      : {
          requestBody: {
            required: op.body.required,
            content: json(objectOf(op.body.fields, config, op.body.requireFields)),
          },
        }),
    responses,
    ...(op.open === true && secured ? { security: [] } : {}),
  };
}

const json = (schema: JsonSchema): JsonSchema => ({ 'application/json': { schema } });

/** The document of a server with this configuration (and /metrics when it serves it). */
export function openApiDocument(config: TaskerConfig, options: { metrics: boolean }): JsonSchema {
  const secured = config.api.tokens.length > 0;
  const paths = Object.fromEntries(
    Object.entries(operations(options.metrics)).map(([path, methods]) => [
      path,
      Object.fromEntries(
        Object.entries(methods).map(([method, op]) => [method, operationOf(op, config, secured)]),
      ),
    ]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'tasker',
      version: VERSION,
      description:
        'Publish/subscribe task broadcast with per-endpoint result tracking. Every answer ' +
        `carries ${REQUEST_ID_HEADER}; every error body its request_id.`,
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    paths,
    components: {
      schemas: { ...RESPONSE_SCHEMAS, Error: errorSchema(ERROR_CODES) },
      parameters: {
        RequestId: {
          name: REQUEST_ID_HEADER,
          in: 'header',
          description: 'kept when at most 128 letters, digits, ".", "_", ":" or "-"',
          schema: { type: 'string', pattern: SANE_REQUEST_ID.source },
        },
      },
      headers: {
        RequestId: {
          description: "the request's id: the client's, or one the server made",
          schema: { type: 'string' },
        },
      },
      ...(secured ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {}),
    },
    ...(secured ? { security: [{ bearer: [] }] } : {}),
  };
}

/** GET /openapi.json: the document, made once. */
export function openApiRoute(config: TaskerConfig, options: { metrics: boolean }): Router {
  const router = express.Router();
  const document = openApiDocument(config, options);
  router.get(OPENAPI_PATH, (_req, res) => {
    res.json(document);
  });
  return router;
}
