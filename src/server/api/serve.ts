/**
 * Registers a route of the management API from its entry in the route table (`routes.ts`): Fastify
 * validates the request with the entry's schemas, through Tandem's own validation (`input.ts`), so
 * that a refusal is the same problem+json with every failing field in `errors`; and the zod type
 * provider types the handler's request and answer by the same schemas.
 */
import type {
  ContextConfigDefault,
  FastifyInstance,
  FastifySchema,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { type InputIssue, InvalidInputError } from '../../errors.js';
import { validatePart } from '../input.js';
import type { ApiRoute } from './routes.js';

type Part = NonNullable<InputIssue['in']>;

/** The Fastify schema of a route, as the type provider reads it. */
type SchemaOf<R extends ApiRoute> = {
  params: R extends { params: infer S } ? S : undefined;
  querystring: R extends { query: infer S } ? S : undefined;
  body: R extends { body: infer S } ? S : undefined;
  response: { [S in R['answer']['status']]: R['answer']['schema'] };
};

export type ApiHandler<R extends ApiRoute> = RouteHandlerMethod<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  RouteGenericInterface,
  ContextConfigDefault,
  SchemaOf<R>,
  ZodTypeProvider
>;

const PARTS: Record<string, Part> = {
  params: 'params',
  querystring: 'query',
  body: 'body',
  headers: 'header',
};

/**
 * Fastify hands a validator `null` for a request without a body; Tandem tells a missing body from
 * a JSON `null` (`expected object, received undefined`), so a missing one is marked first.
 */
const NO_BODY = Symbol('no body');

export function serve<R extends ApiRoute>(app: FastifyInstance, route: R, handler: ApiHandler<R>): void {
  const schema: FastifySchema = {};
  if (route.params) schema.params = route.params;
  if (route.query) schema.querystring = route.query;
  if (route.body) schema.body = route.body;
  // Answers are written as before (JSON.stringify, unchecked): their schema types the handler.
  if (route.answer.contentType === undefined)
    schema.response = { [route.answer.status]: route.answer.schema };
  app.route({
    method: route.method,
    url: route.url,
    schema,
    validatorCompiler: ({ schema, httpPart }) => {
      const part = PARTS[httpPart ?? ''] ?? 'body';
      return (data) => {
        let value = data === NO_BODY ? undefined : data;
        if (part === 'body' && route.emptyBody !== undefined) value ??= route.emptyBody;
        const issues: InputIssue[] = [];
        const parsed = validatePart(schema as z.ZodType, value, part, issues);
        return issues.length > 0 ? { error: new InvalidInputError(issues) } : { value: parsed };
      };
    },
    serializerCompiler: () => (data) => JSON.stringify(data),
    config: {
      // The role the management API's guard asks of the request's token.
      ...(route.role === undefined ? {} : { role: route.role }),
      // An optional body may also come as a bare JSON content type (a partner's empty callback).
      ...(route.emptyBody !== undefined ? { emptyBodyAllowed: true } : {}),
    },
    ...(route.body
      ? {
          preValidation: (request, _reply, done) => {
            if (request.body === undefined) request.body = NO_BODY;
            done();
          },
        }
      : {}),
    handler: handler as RouteHandlerMethod,
  });
}
