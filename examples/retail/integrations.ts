/**
 * The retail demo's integrations, one per pattern:
 * - sync: `check-balance` asks the bank while the caller waits;
 * - sync → async: `place-order` answers with a confirmation number at once and hands off
 *   `fulfil-order` (customer account, marketing sign-up, stock reservation, packing list), committed
 *   before the answer is sent;
 * - async: `onboard-employee`, and `attach-document`, which waits for its employee (ordering key).
 */
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';

export function retail(
  urls: Record<'bank' | 'inventory' | 'crm' | 'marketing' | 'warehouse' | 'hr' | 'documents', string>,
) {
  const circuit = { failures: 5, reprobeMs: 5_000 };
  const connections = {
    bank: httpConnection('bank', { baseUrl: urls.bank, timeout: 2_000 }),
    inventory: httpConnection('inventory', { baseUrl: urls.inventory, circuit }),
    crm: httpConnection('crm', { baseUrl: urls.crm, circuit }),
    marketing: httpConnection('marketing', { baseUrl: urls.marketing, circuit }),
    warehouse: httpConnection('warehouse', { baseUrl: urls.warehouse, circuit }),
    hr: httpConnection('hr', { baseUrl: urls.hr, circuit }),
    documents: httpConnection('documents', { baseUrl: urls.documents, circuit }),
  };

  const checkBalance = defineIntegration({
    id: 'check-balance',
    mode: 'sync',
    route: 'GET /accounts/:account/balance',
    params: z.object({ account: z.string().min(1) }),
    deadline: 2_000,
    async handler(ctx) {
      return { body: await ctx.call(connections.bank, 'GET', `/accounts/${ctx.params.account}`) };
    },
  });

  const order = z.object({
    orderId: z.string().min(1),
    email: z.string().email(),
    sku: z.string().min(1),
    qty: z.number().int().positive(),
    marketing: z.boolean().default(false),
  });

  const fulfilOrder = defineIntegration({
    id: 'fulfil-order',
    mode: 'async',
    input: order,
    track: { orderId: 'orderId', email: 'email' },
    retry: { maxAttempts: 8, initialDelayMs: 1_000, maxDelayMs: 30_000 },
    async handler(ctx) {
      const { orderId, email, sku, qty } = ctx.input;
      const customer = await ctx.step('create-account', () =>
        ctx.call(connections.crm, 'POST', '/customers', { json: { email } }),
      );
      if (ctx.input.marketing) {
        await ctx.step('marketing-signup', () =>
          ctx.call(connections.marketing, 'POST', '/subscriptions', { json: { email } }),
        );
      }
      const reservation = await ctx.step('update-inventory', () =>
        ctx.call(connections.inventory, 'POST', '/reservations', { json: { sku, qty } }),
      );
      const packingList = await ctx.step('packing-list', () => ({
        orderId,
        sku,
        qty,
        customer,
        reservation,
      }));
      await ctx.step('send-to-warehouse', () =>
        ctx.call(connections.warehouse, 'POST', '/packing-lists', { json: packingList }),
      );
      return { orderId, status: 'fulfilled' };
    },
  });

  let confirmations = 0;
  const placeOrder = defineIntegration({
    id: 'place-order',
    mode: 'sync',
    route: 'POST /orders',
    input: order,
    track: { orderId: 'orderId' },
    deadline: 3_000,
    async handler(ctx) {
      // Committed before the answer is written: no confirmation without its follow-up queued.
      await ctx.start(fulfilOrder, ctx.input);
      return { status: 201, body: { orderId: ctx.input.orderId, confirmation: `CONF-${++confirmations}` } };
    },
  });

  const onboardEmployee = defineIntegration({
    id: 'onboard-employee',
    mode: 'async',
    route: 'POST /employees',
    input: z.object({ employeeId: z.string(), name: z.string() }),
    track: { employeeId: 'employeeId' },
    orderingKey: 'employeeId',
    async handler(ctx) {
      await ctx.step('hr-record', () => ctx.call(connections.hr, 'POST', '/employees', { json: ctx.input }));
      return { onboarded: ctx.input.employeeId };
    },
  });

  const attachDocument = defineIntegration({
    id: 'attach-document',
    mode: 'async',
    route: 'POST /employees/documents',
    input: z.object({ employeeId: z.string(), title: z.string() }),
    track: { employeeId: 'employeeId' },
    // Same key as onboard-employee: the document waits until the employee record exists.
    orderingKey: 'employeeId',
    async handler(ctx) {
      await ctx.step('store', () =>
        ctx.call(connections.documents, 'POST', '/documents', { json: ctx.input }),
      );
    },
  });

  return {
    integrations: [checkBalance, placeOrder, fulfilOrder, onboardEmployee, attachDocument],
    connections: Object.values(connections),
  };
}
