import http from 'node:http';
import https from 'node:https';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig } from 'axios';
import type { ErrorBody, ErrorCode, FieldProblem } from '../errors';

/** An answer from the fleet that was not a 2xx; `status` 0 means no answer (network, time-out). */
export class FleetApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'network_error',
    message: string,
    readonly fields: FieldProblem[] = [],
  ) {
    super(message);
    this.name = 'FleetApiError';
  }

  /** True when the request may succeed if sent again later (no answer, or the server was unwell). */
  get transient(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 429;
  }
}

export interface ClientOptions {
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>`; never logged or put into errors. */
  apiKey: string;
  timeoutMs?: number;
  /** Extra axios settings (proxies, a custom adapter for tests). */
  axios?: AxiosRequestConfig;
}

export function createHttp(options: ClientOptions): AxiosInstance {
  const instance = axios.create({
    baseURL: options.baseUrl.replace(/\/+$/, ''),
    timeout: options.timeoutMs ?? 15_000,
    headers: { Authorization: `Bearer ${options.apiKey}`, 'Content-Type': 'application/json' },
    // Keep-alive: a worker talks to one orchestrator all day; a new TCP handshake per call is waste.
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 64 }),
    validateStatus: () => true,
    // No redirects in this protocol; without follow-redirects axios uses Node's http directly (cheaper per call).
    maxRedirects: 0,
    ...options.axios,
  });
  return instance;
}

/**
 * Sends one request and returns the body of a 2xx, `null` for 204, or throws FleetApiError.
 * `onHeaders` sees the answer's headers (a 204 carries its news there).
 */
export async function send<T>(http: AxiosInstance, config: AxiosRequestConfig, onHeaders?: (headers: Record<string, unknown>) => void): Promise<T | null> {
  let res;
  try {
    res = await http.request<T | ErrorBody>(config);
  } catch (err) {
    // Only the method, path and the network error code: the request config holds the key.
    const code = err instanceof AxiosError ? (err.code ?? 'unknown') : 'unknown';
    throw new FleetApiError(0, 'network_error', `${config.method ?? 'GET'} ${config.url}: no answer (${code})`);
  }
  onHeaders?.(res.headers as Record<string, unknown>);
  if (res.status === 204) return null;
  if (res.status >= 200 && res.status < 300) return res.data as T;
  const body = res.data as Partial<ErrorBody> | undefined;
  const error = body && typeof body === 'object' ? body.error : undefined;
  throw new FleetApiError(
    res.status,
    error?.code ?? 'internal_error',
    error?.message ?? `${config.method ?? 'GET'} ${config.url}: HTTP ${res.status}`,
    error?.fields ?? [],
  );
}
