/**
 * SQL text lives under src/store only (docs/architecture.md): every other layer goes through the
 * Store interface. The check reads each source file's string and template literals with the
 * TypeScript parser (comments and identifiers may name SQL words freely) and looks for statement
 * shapes; nothing is allowed outside src/store.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Statement shapes, in the upper case Tandem writes SQL in (lower-case prose such as "select a file" is not SQL). */
const SQL = [
  /\bSELECT\b[\s\S]*\bFROM\b/,
  /\bSELECT\s+[\w$]+\s*\(/,
  /\bINSERT\s+(OR\s+\w+\s+)?INTO\b/,
  /\bUPDATE\s+\S+(\s+\w+)?\s+SET\b/,
  /\bDELETE\s+FROM\b/,
  /\b(CREATE|DROP|ALTER)\s+(UNIQUE\s+)?(TABLE|SCHEMA|INDEX|VIEW|FUNCTION|TRIGGER|TYPE|SEQUENCE)\b/,
  /\bWITH\s+\w+\s+AS\s*\(/,
  /^\s*(BEGIN|COMMIT|ROLLBACK)(\s+(IMMEDIATE|DEFERRED|TRANSACTION))?\s*;?\s*$/,
  /\bPRAGMA\s+\w+/,
];

/** The text of each string and template literal in a source (a template's parts joined by a placeholder). */
function literals(fileName: string, text: string): { line: number; text: string }[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: { line: number; text: string }[] = [];
  const add = (node: ts.Node, value: string) =>
    found.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: value });
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
      add(node, node.text);
    } else if (ts.isTemplateExpression(node)) {
      add(node, [node.head.text, ...node.templateSpans.map((span) => span.literal.text)].join('$1'));
      for (const span of node.templateSpans) visit(span.expression);
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sqlIn(fileName: string, text: string): string[] {
  return literals(fileName, text)
    .filter((literal) => SQL.some((pattern) => pattern.test(literal.text)))
    .map((literal) => `${fileName}:${literal.line}: ${literal.text.replace(/\s+/g, ' ').slice(0, 80)}`);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|tsx|js|mjs|cjs)$/.test(entry.name))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

describe('architecture: SQL text', () => {
  it('appears in no source file outside src/store', () => {
    // The PostgreSQL connection kind runs an application's SQL on the application's database (and
    // a statement cancel of its own); it never touches Tandem's store.
    const files = sourceFiles('src').filter(
      (file) =>
        !file.startsWith(join('src', 'store') + sep) &&
        !file.startsWith(join('src', 'connections', 'postgres')),
    );
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((file) => sqlIn(file, readFileSync(join(root, file), 'utf8')));
    expect(found).toEqual([]);
  });

  it('is recognised in strings and templates, and not in comments or prose', () => {
    // Source text: `#{…}` stands for a template's `${…}`.
    const sample = [
      '// UPDATE instances SET status in a comment is fine',
      "const a = 'SELECT id FROM instances WHERE seq = ?';",
      'const b = `INSERT INTO #{schema}.events (type) VALUES ($1)`;',
      'const c = `UPDATE #{schema}.instance_state s SET status = $1`;',
      "const d = ['DELETE FROM', 'steps'].join(' ');",
      'const e = `DROP SCHEMA IF EXISTS #{schema} CASCADE`;',
      "const f = 'SELECT pg_notify($1, $2)';",
      "const g = 'Select a file from the list, then update it and delete it';",
      "const h = ['GET', 'POST', 'DELETE'];",
    ]
      .join('\n')
      .replaceAll('#{', '${');
    expect(sqlIn('sample.ts', sample).map((hit) => hit.split(':')[1])).toEqual([
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
    ]);
  });

  it('is found in the stores (the check reads what it is meant to)', () => {
    const store = sourceFiles(join('src', 'store'));
    const found = store.flatMap((file) => sqlIn(file, readFileSync(join(root, file), 'utf8')));
    expect(found.length).toBeGreaterThan(50);
  });
});
