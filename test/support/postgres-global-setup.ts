/**
 * vitest `globalSetup`: one PostgreSQL server per test run, shared by every test file.
 *
 * Tests read its URL with `inject('postgresUrl')` (database `postgres`, user `postgres`, no
 * password); the `ProvidedContext` augmentation that types it is in `./provided.ts`. A test that
 * needs its own database calls `CREATE DATABASE` on that URL, and a test that restarts or kills
 * the server starts its own with `startPostgres()` instead.
 */
import type { TestProject } from 'vitest/node';
import './provided.js';
import { startPostgres } from './postgres.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return async () => {
    await server.stop();
  };
}
