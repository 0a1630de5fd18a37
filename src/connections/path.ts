/**
 * Path parameters of `ctx.call`: `/accounts/:account` with `{ params: { account } }`. A value
 * pasted into a path by hand (`/accounts/${account}`) lets the caller's input choose another
 * endpoint of the application (`../../admin`, `x?debug=1`); here every value is one path segment,
 * encoded with encodeURIComponent, and a template that asks for a value it is not given (or is
 * given one it does not use) is refused before anything is sent: `invalid-definition`, a mistake
 * in the handler. A value that is empty, "." or ".." is refused as `invalid-input`: it comes from
 * the input.
 */
import { InvalidDefinitionError, InvalidInputError } from '../errors.js';

export type PathParams = Readonly<Record<string, string | number | bigint | boolean>>;

/** `:name` at the start of a segment, up to the next `/`, `?`, `#` or a character a name cannot hold. */
const PARAM = /(?<=\/):([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * Fills a path template's `:name` segments with their encoded values.
 *
 * @example
 * expandPath('/accounts/:account/balance', { account: 'A/1' }) // '/accounts/A%2F1/balance'
 */
export function expandPath(template: string, params: PathParams | undefined): string {
  const used = new Set<string>();
  const path = template.replace(PARAM, (_, name: string) => {
    const value = params && Object.hasOwn(params, name) ? params[name] : undefined;
    if (value === undefined || value === null) {
      throw new InvalidDefinitionError(`Path ${template}: ":${name}" has no value: pass it in params`);
    }
    const text = String(value);
    // Encoded, "." and ".." are still "." and "..": a server that resolves dot segments would leave
    // the template; and an empty value drops a segment.
    if (text === '' || text === '.' || text === '..') {
      throw new InvalidInputError([
        { path: `params.${name}`, message: `${JSON.stringify(text)} is not a path segment of ${template}` },
      ]);
    }
    used.add(name);
    return encodeURIComponent(text);
  });
  for (const name of Object.keys(params ?? {})) {
    if (!used.has(name))
      throw new InvalidDefinitionError(`Path ${template}: params.${name} is not a ":${name}" of the path`);
  }
  return path;
}
