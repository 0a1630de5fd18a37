import { StringDecoder } from 'node:string_decoder';
import type { z } from 'zod';
import type { ByteFile, ByteInput } from './bytes.js';
import { type RawRecord, type RecordOf, RecordSource, type SourceOptions } from './source.js';

/**
 * Records of a file holding one JSON array (`[{…}, {…}]`), streamed element by element: the file
 * is never parsed whole, so its size does not matter. An element that is not valid JSON is reported
 * with the line it starts on and reading goes on; a file that is not an array fails.
 *
 * @example
 * const products = jsonArraySource('./exports/products.json', { schema: Product });
 */
export function jsonArraySource<S extends z.ZodType | undefined = undefined>(
  input: ByteInput,
  options: SourceOptions<S> = {},
): RecordSource<RecordOf<S>> {
  return new RecordSource(input, readJsonArray, options.schema, options.maxReported);
}

/**
 * A scanner over the text that finds where each top-level element starts and ends (tracking
 * nesting depth and strings), then hands each element's text to JSON.parse.
 */
async function* readJsonArray(file: ByteFile): AsyncGenerator<RawRecord[]> {
  const decoder = new StringDecoder('utf8');
  const where = file.file ?? 'the input';
  type State = 'before' | 'between' | 'element' | 'after';
  let state: State = 'before';
  let depth = 0; // brackets open inside the current element (a scalar stays at 0)
  let inString = false;
  let escaped = false;
  let line = 1;
  let element = ''; // text of the current element so far (across chunks)
  let elementLine = 0;

  const finish = (batch: RawRecord[]) => {
    const text = element.trim();
    element = '';
    if (text === '') {
      batch.push({ value: undefined, line: elementLine, error: 'empty element' });
      return;
    }
    try {
      batch.push({ value: JSON.parse(text), line: elementLine });
    } catch (error) {
      batch.push({ value: undefined, line: elementLine, error: `invalid JSON: ${(error as Error).message}` });
    }
  };

  const scan = (text: string, batch: RawRecord[]) => {
    let from = -1; // start of the current element's text within this chunk
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) line++;
      if (state === 'element') {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92)
            escaped = true; // backslash
          else if (c === 34) inString = false; // quote
          continue;
        }
        if (c === 34) inString = true;
        else if (c === 123 || c === 91)
          depth++; // { [
        else if (c === 125 || c === 93) {
          // } ]
          if (depth === 0) {
            // the array's closing bracket ends the last element
            element += text.slice(Math.max(from, 0), i);
            from = -1;
            finish(batch);
            state = 'after';
          } else depth--;
        } else if (c === 44 && depth === 0) {
          // a comma between elements
          element += text.slice(Math.max(from, 0), i);
          from = -1;
          finish(batch);
          state = 'between';
        }
        continue;
      }
      if (c === 32 || c === 9 || c === 10 || c === 13) continue;
      if (state === 'before') {
        if (c !== 91) throw new Error(`${where} is not a JSON array (line ${line})`);
        state = 'between';
      } else if (state === 'between') {
        // "]" here closes an empty array (or follows a trailing comma, which is let pass)
        if (c === 93) {
          state = 'after';
          continue;
        }
        state = 'element';
        elementLine = line;
        from = i;
        depth = 0;
        if (c === 34) inString = true;
        else if (c === 123 || c === 91) depth = 1;
        else if (c === 44) {
          batch.push({ value: undefined, line, error: 'empty element' });
          state = 'between';
          from = -1;
        }
      } else if (state === 'after') {
        throw new Error(`${where}: unexpected text after the JSON array (line ${line})`);
      }
    }
    if (state === 'element') element += text.slice(Math.max(from, 0));
  };

  for await (const chunk of file.chunks) {
    const batch: RawRecord[] = [];
    scan(typeof chunk === 'string' ? chunk : decoder.write(chunk), batch);
    if (batch.length > 0) yield batch;
  }
  const batch: RawRecord[] = [];
  scan(decoder.end(), batch);
  if (state !== ('after' as State)) {
    throw new Error(`${where}: the JSON array is not closed (line ${line})`);
  }
  if (batch.length > 0) yield batch;
}
