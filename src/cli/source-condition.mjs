// A module resolve hook for running Tandem from its sources: it adds the `tandem-source` export
// condition, so that `import … from 'tandem'` (a config's, an example's) resolves to src/ as the CLI
// does, and one copy of every module serves both. Registered by bin/tandem.js; the same as
// `node --conditions=tandem-source`.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes('tandem-source')
    ? context.conditions
    : [...context.conditions, 'tandem-source'];
  return nextResolve(specifier, { ...context, conditions });
}
