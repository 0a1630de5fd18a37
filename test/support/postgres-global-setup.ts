import type { TestProject } from 'vitest/node';
import './provided.js';
import { startPostgres } from './postgres.js';

/** One PostgreSQL server per test run, shared by every test file through `inject('postgresUrl')`. */
export default async function setup(project: TestProject) {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return async () => {
    await server.stop();
  };
}
