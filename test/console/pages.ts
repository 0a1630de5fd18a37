/**
 * Every page of the console, in one list: the accessibility test visits each, so a new page is
 * checked once it is listed here. Pages that show one thing take its id from the demo's data.
 */
export interface ConsolePage {
  /** Names the screenshot. */
  name: string;
  /** The route after `#`. */
  hash: string;
  /** The page's level-1 heading, which says it has rendered. */
  heading: string;
}

/** Ids of things the demo has after a scripted outage, for the pages that show one. */
export interface PageIds {
  /** An instance (a failed fulfilment, with attempts, steps and calls). */
  instanceId: string;
}

export function consolePages(ids: PageIds): ConsolePage[] {
  return [
    { name: 'overview', hash: '/', heading: 'Overview' },
    { name: 'instances', hash: '/instances', heading: 'Instances' },
    {
      name: 'instance',
      hash: `/instances/${ids.instanceId}`,
      heading: `Instance ${ids.instanceId.slice(-12)}`,
    },
    { name: 'integrations', hash: '/integrations', heading: 'Integrations' },
    {
      name: 'integration-fulfil-order',
      hash: '/integrations/fulfil-order',
      heading: 'Integration fulfil-order',
    },
    {
      name: 'integration-place-order',
      hash: '/integrations/place-order',
      heading: 'Integration place-order',
    },
    {
      name: 'integration-nightly-orders',
      hash: '/integrations/nightly-orders',
      heading: 'Integration nightly-orders',
    },
    {
      name: 'run-fulfil-order',
      hash: '/integrations/fulfil-order/run',
      heading: 'Run fulfil-order with test input',
    },
    {
      name: 'run-current-inventory',
      hash: '/integrations/current-inventory/run',
      heading: 'Run current-inventory with test input',
    },
    { name: 'errors', hash: '/errors', heading: 'Errors' },
    { name: 'schedules', hash: '/schedules', heading: 'Schedules' },
    { name: 'connections', hash: '/connections', heading: 'Connections' },
    { name: 'advisor', hash: '/advisor', heading: 'Advisor' },
  ];
}
