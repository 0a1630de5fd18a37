/**
 * What the parts of the engine share: the integrations and connections it knows (checked once),
 * its store, clock and logger, and one observer that fans out to every watcher. The facade makes
 * these once and hands them to the acceptor, the dispatcher and the operations, so that no part
 * reaches into another for them.
 */
import type { Logger } from 'pino';
import type { Connection } from '../connections/connection.js';
import { checkIntegrations } from '../define/config.js';
import type { AnyIntegration } from '../define/integration.js';
import { InvalidDefinitionError, UnknownIntegrationError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { Tracing } from '../tracing/tracing.js';
import type { Clock } from './clock.js';
import type { EngineObserver } from './observer.js';

/** The integrations and connections of one engine, and which integrations this process runs. */
export class Registry {
  private readonly integrations = new Map<string, AnyIntegration>();
  readonly connections = new Map<string, Connection>();
  /** The async and scheduled integrations this process runs (all of them, unless narrowed by `run`). */
  readonly runnableIds: string[];

  constructor(integrations: AnyIntegration[], connections: Connection[] = [], run?: string[]) {
    checkIntegrations(integrations);
    for (const integration of integrations) this.integrations.set(integration.id, integration);
    for (const connection of connections) {
      if (this.connections.has(connection.id)) {
        throw new InvalidDefinitionError(`Connection id "${connection.id}" is defined twice`);
      }
      this.connections.set(connection.id, connection);
    }
    const runnable = integrations.filter((i) => i.mode !== 'sync').map((i) => i.id);
    this.runnableIds = run ? runnable.filter((id) => run.includes(id)) : runnable;
  }

  /** The integration with this id; throws when there is none. */
  integration(id: string): AnyIntegration {
    const integration = this.integrations.get(id);
    if (!integration) throw new UnknownIntegrationError(id);
    return integration;
  }

  /** The integration with this id, or undefined. */
  find(id: string): AnyIntegration | undefined {
    return this.integrations.get(id);
  }

  list(): AnyIntegration[] {
    return [...this.integrations.values()];
  }
}

/** Every watcher of the engine behind one observer, so that a throwing watcher cannot break the engine. */
export class Observers {
  private readonly watchers: EngineObserver[];
  readonly observer: Required<EngineObserver> = {
    accepted: (...args) => this.notify('accepted', args),
    started: (...args) => this.notify('started', args),
    finished: (...args) => this.notify('finished', args),
    syncFinished: (...args) => this.notify('syncFinished', args),
    refused: (...args) => this.notify('refused', args),
    circuit: (...args) => this.notify('circuit', args),
    slot: (...args) => this.notify('slot', args),
    slotsMissed: (...args) => this.notify('slotsMissed', args),
  };

  constructor(
    private readonly logger: Logger,
    watchers: EngineObserver[],
  ) {
    this.watchers = [...watchers];
  }

  add(observer: EngineObserver): void {
    this.watchers.push(observer);
  }

  private notify<K extends keyof EngineObserver>(
    hook: K,
    args: Parameters<Required<EngineObserver>[K]>,
  ): void {
    for (const observer of this.watchers) {
      try {
        (observer[hook] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch (error) {
        this.logger.warn({ err: error, hook }, 'an engine observer threw');
      }
    }
  }
}

/** What every part of the engine is made with. */
export interface EngineParts {
  store: Store;
  /** Null when tracing is not configured. */
  tracing: Tracing | null;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  observer: Required<EngineObserver>;
}

/** Told that there may be work to claim (an accept, a rerun, a fired slot). */
export interface Waker {
  wake(): void;
}
