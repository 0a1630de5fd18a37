/**
 * A form generated from a JSON Schema (the one the server makes from an integration's zod schema),
 * and a sample value made from the same schema. It covers what integration inputs are usually made
 * of — objects of strings, numbers, booleans and enums; anything else (arrays, unions, nested
 * structures it cannot lay out) is edited as JSON in a field of its own, and the whole value can
 * always be edited as JSON instead.
 */
import type { JSX } from 'preact';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  examples?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  description?: string;
}

type Json = unknown;

const typeOf = (schema: JsonSchema): string | undefined =>
  Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;

/** Candidates for a string with a pattern: the first the pattern accepts is the sample. */
const PATTERN_GUESSES = ['ACME', 'KB-1', 'A-1', 'abc', 'a1', '1', 'example'];

/** A value the schema accepts where it can tell: its default, example or first choice, else one by type. */
export function sampleOf(schema: JsonSchema, name = 'value'): Json {
  if (schema.const !== undefined) return schema.const;
  if (schema.default !== undefined) return schema.default;
  if (schema.examples && schema.examples.length > 0) return schema.examples[0];
  if (schema.enum && schema.enum.length > 0) return schema.enum[0];
  switch (typeOf(schema)) {
    case 'object':
      return Object.fromEntries(
        Object.entries(schema.properties ?? {}).map(([key, property]) => [key, sampleOf(property, key)]),
      );
    case 'array':
      return schema.items ? [sampleOf(schema.items, name)] : [];
    case 'number':
    case 'integer':
      return schema.minimum ?? (schema.exclusiveMinimum === undefined ? 1 : schema.exclusiveMinimum + 1);
    case 'boolean':
      return false;
    case 'null':
      return null;
    case 'string':
      return sampleString(schema, name);
    default:
      return schema.properties ? sampleOf({ ...schema, type: 'object' }, name) : null;
  }
}

function sampleString(schema: JsonSchema, name: string): string {
  switch (schema.format) {
    case 'email':
      return 'ada@example.com';
    case 'date-time':
      return new Date().toISOString();
    case 'date':
      return new Date().toISOString().slice(0, 10);
    case 'uuid':
      return crypto.randomUUID();
    case 'uri':
    case 'url':
      return 'https://example.com/';
  }
  if (schema.pattern) {
    try {
      const pattern = new RegExp(schema.pattern, 'u');
      const fit = [`${name}-1`, ...PATTERN_GUESSES].find((guess) => pattern.test(guess));
      if (fit) return fit;
    } catch {
      // A pattern this browser cannot read: a plain sample, which the server will judge.
    }
  }
  const sample = `${name}-1`;
  return sample.length >= (schema.minLength ?? 0) ? sample : sample.padEnd(schema.minLength!, 'x');
}

/** Whether a schema is laid out as fields (an object whose every property has a field), not as JSON. */
export function hasFields(schema: JsonSchema): boolean {
  return (typeOf(schema) === 'object' || schema.properties !== undefined) && schema.properties !== undefined;
}

export interface FieldProps {
  schema: JsonSchema;
  value: Json;
  onChange: (value: Json) => void;
  /** The path of this value in the body (`params.sku`), for labels, ids and errors. */
  path: string;
  /** Refusals by path, from the server's problem+json. */
  errors: Record<string, string>;
}

/** The fields of an object schema, one per property; nested objects as fieldsets. */
export function ObjectFields({ schema, value, onChange, path, errors }: FieldProps) {
  const object = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<
    string,
    Json
  >;
  const required = new Set(schema.required ?? []);
  return (
    <>
      {Object.entries(schema.properties ?? {}).map(([key, property]) => {
        const at = path === '' ? key : `${path}.${key}`;
        const set = (next: Json) => {
          const copy = { ...object };
          if (next === undefined) delete copy[key];
          else copy[key] = next;
          onChange(copy);
        };
        if (hasFields(property)) {
          return (
            <fieldset key={key} class="schema-fields">
              <legend>{key}</legend>
              <ObjectFields schema={property} value={object[key]} onChange={set} path={at} errors={errors} />
            </fieldset>
          );
        }
        return (
          <Field
            key={key}
            name={key}
            required={required.has(key)}
            schema={property}
            value={object[key]}
            onChange={set}
            path={at}
            errors={errors}
          />
        );
      })}
    </>
  );
}

function Field({
  name,
  required,
  schema,
  value,
  onChange,
  path,
  errors,
}: FieldProps & { name: string; required: boolean }) {
  const id = `field-${path.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const error = errors[path];
  const described = [schema.description ? `${id}-about` : '', error ? `${id}-error` : '']
    .filter(Boolean)
    .join(' ');
  const common = {
    id,
    name: path,
    'aria-invalid': error ? ('true' as const) : undefined,
    'aria-describedby': described || undefined,
  };
  const type = typeOf(schema);
  let control: JSX.Element;
  if (schema.enum) {
    control = (
      <select
        {...common}
        value={JSON.stringify(value)}
        onChange={(e) => onChange(JSON.parse((e.target as HTMLSelectElement).value))}
      >
        {schema.enum.map((choice) => (
          <option key={String(choice)} value={JSON.stringify(choice)}>
            {String(choice)}
          </option>
        ))}
      </select>
    );
  } else if (type === 'boolean') {
    control = (
      <input
        {...common}
        type="checkbox"
        checked={value === true}
        onChange={(e) => onChange((e.target as HTMLInputElement).checked)}
      />
    );
  } else if (type === 'number' || type === 'integer') {
    control = (
      <input
        {...common}
        type="number"
        step={type === 'integer' ? 1 : 'any'}
        value={typeof value === 'number' ? String(value) : ''}
        onInput={(e) => {
          const text = (e.target as HTMLInputElement).value;
          onChange(text === '' ? undefined : Number(text));
        }}
      />
    );
  } else if (type === 'string') {
    const onInput = (e: Event) => onChange((e.target as HTMLInputElement).value);
    const text = typeof value === 'string' ? value : '';
    control =
      schema.format === 'email' ? (
        <input {...common} type="email" value={text} onInput={onInput} />
      ) : (
        <input {...common} type="text" value={text} onInput={onInput} />
      );
  } else {
    control = <JsonField {...common} value={value} onChange={onChange} />;
  }
  return (
    <div class="schema-field">
      <label for={id}>
        {name}
        {required ? ' (required)' : ''}
      </label>
      {control}
      {schema.description ? (
        <small id={`${id}-about`} class="live">
          {schema.description}
        </small>
      ) : null}
      {error ? (
        <small id={`${id}-error`} class="problem">
          {error}
        </small>
      ) : null}
    </div>
  );
}

/** A value edited as JSON text; it changes the value only while the text is valid JSON. */
function JsonField({
  value,
  onChange,
  rows = 3,
  ...rest
}: {
  value: Json;
  onChange: (value: Json) => void;
  rows?: number;
  id: string;
  name?: string;
  'aria-invalid'?: 'true';
  'aria-describedby'?: string;
}) {
  return (
    <textarea
      {...rest}
      rows={rows}
      spellcheck={false}
      value={value === undefined ? '' : JSON.stringify(value, null, 2)}
      onChange={(e) => {
        const text = (e.target as HTMLTextAreaElement).value;
        try {
          onChange(text.trim() === '' ? undefined : JSON.parse(text));
        } catch {
          // Kept as typed; the page says the JSON is not valid.
        }
      }}
    />
  );
}
