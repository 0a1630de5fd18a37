/** The instance lifecycle: statuses, activity events and the transitions between them, defined once. */
export * from './activity.js';
export * from './statuses.js';
export * from './transitions.js';
