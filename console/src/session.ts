/**
 * The console's session as the server states it (`GET /console/session`): signed in or not, and the
 * role of its token. The pages hide the actions the role lacks; the API refuses them anyway, so this
 * spares a click that would only be refused, it is not the protection.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role } from '../../src/model.js';

export interface Session {
  signedIn: boolean;
  role: Role;
  /** The token's name (shown beside "Sign out"); null on a server without tokens. */
  token: string | null;
}

/** Until the server has answered: nothing may be done (no action shown). */
export const UNKNOWN: Session = { signedIn: false, role: 'viewer', token: null };

export const SessionContext = createContext<Session>(UNKNOWN);

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether the session's role includes `role`. */
export function useCan(role: Role): boolean {
  return RANK[useContext(SessionContext).role] >= RANK[role];
}

export async function loadSession(): Promise<Session> {
  const response = await fetch('/console/session', { headers: { accept: 'application/json' } });
  if (!response.ok) return UNKNOWN;
  const body = (await response.json()) as Partial<Session>;
  return { signedIn: body.signedIn === true, role: body.role ?? 'viewer', token: body.token ?? null };
}
