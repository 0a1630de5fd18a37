/**
 * Which way imports go inside src/ (docs/architecture.md says why). Checked by
 * test/architecture/dependencies.test.ts in `npm test`; `npx depcruise src` prints the same.
 * Type-only imports count: a layer that names another's types depends on it.
 */

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'engine-not-to-server-or-cli',
      comment: 'The engine runs integrations; HTTP and the command line are shells around it.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^src/(server|cli)/' },
    },
    {
      name: 'store-not-to-engine-or-define',
      comment: 'A store keeps rows; it knows the vocabulary (model, lifecycle), not who writes them.',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^src/(engine|define)/' },
    },
    {
      name: 'vocabulary-imports-only-itself',
      comment:
        'model.ts and src/lifecycle are the vocabulary every layer names: they import nothing but each other.',
      severity: 'error',
      from: { path: '^src/(model\\.ts$|lifecycle/)' },
      to: { pathNot: '^src/(model\\.ts$|lifecycle/)' },
    },
    {
      name: 'sql-drivers-only-in-store',
      comment:
        "better-sqlite3 and pg are the stores' business: elsewhere, go through the Store interface. The PostgreSQL connection kind (connections/postgres*) is the one exception: it talks to an application's database, not to Tandem's store.",
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(store/|connections/postgres)' },
      to: { path: '(^|/)node_modules/(@types/)?(better-sqlite3|pg)/' },
    },
    {
      name: 'no-circular',
      comment: 'No cycles, type-only ones included: a cycle means two modules are one.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import the cruiser cannot resolve would slip past every rule above.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports are dependencies too (they are erased at compile time, not at design time).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['tandem-source', 'import', 'require', 'node', 'types', 'default'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
