import type { ClientBase } from 'pg';

/**
 * pg-pool's `onConnect` hook for every pool of the orchestrator: gives each connection a permanent
 * 'error' listener. pg-pool listens for errors only while a client is idle in the pool, and pg
 * emits 'error' on a client whose connection drops (a database restart or failover) even while a
 * query runs on it; on a checked-out client (a transaction, the reaper's tick, a health check) no
 * one would be listening and the process would die of an unhandled 'error' event. The queries on
 * that client fail by themselves, and pg-pool discards the broken client when it is released.
 */
export function surviveDroppedConnection(client: ClientBase): void {
  client.on('error', () => undefined);
}
