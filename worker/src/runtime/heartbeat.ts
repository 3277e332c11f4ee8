import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HeartbeatResponse, HeldLease, WorkerActivity } from '@avatar-fleet/contracts';
import type { Logger, LogLevel } from './logger';

/** What the main thread tells the heartbeat thread: the state every beat reports. */
export interface HeartbeatState {
  activity: WorkerActivity;
  leases: HeldLease[];
}

export interface HeartbeatThreadData {
  baseUrl: string;
  /** The worker's token (the enrolment key only for an orchestrator that issues none). */
  apiKey: string;
  workerId: string;
  intervalMs: number;
  logLevel: LogLevel;
  executionProvider: string;
  state: HeartbeatState;
}

export type ToHeartbeatThread = { type: 'state'; state: HeartbeatState } | { type: 'token'; token: string } | { type: 'stop' };

export type FromHeartbeatThread =
  | { type: 'reply'; reply: HeartbeatResponse; sent: HeldLease[] }
  | { type: 'failed'; status: number; code: string; message: string }
  | { type: 'drift'; expectedMs: number; actualMs: number };

export interface HeartbeatHandlers {
  /** A beat was answered; `sent` are the leases it reported, so a stale `lost` can be told apart. */
  onReply(reply: HeartbeatResponse, sent: HeldLease[]): void;
  onFailure(failure: { status: number; code: string; message: string }): void;
  /** A beat came more than 20 % off its interval (the thread has logged it already). */
  onDrift?(drift: { expectedMs: number; actualMs: number }): void;
}

/**
 * Heartbeats run on their own `worker_threads` thread with their own HTTP client, so ONNX or
 * ffmpeg work blocking the main thread cannot delay them and leases are renewed regardless. The
 * main thread only posts state changes and reads the replies when it next gets the chance.
 */
export class HeartbeatThread {
  private thread?: Worker;

  constructor(
    private readonly log: Logger,
    private readonly handlers: HeartbeatHandlers,
  ) {}

  start(data: HeartbeatThreadData): void {
    const thread = new Worker(path.join(__dirname, 'heartbeat.thread.js'), { workerData: data });
    thread.on('message', (message: FromHeartbeatThread) => {
      if (message.type === 'reply') this.handlers.onReply(message.reply, message.sent);
      else if (message.type === 'failed') this.handlers.onFailure(message);
      else this.handlers.onDrift?.(message);
    });
    thread.on('error', (error) => this.log.error('heartbeat thread crashed', { reason: error.message }));
    // Not unref'd: an idle or draining worker waits on nothing else, and must stay alive until stopped.
    this.thread = thread;
  }

  /** The worker registered again: beats carry its new token from now on. */
  setToken(token: string): void {
    this.thread?.postMessage({ type: 'token', token } satisfies ToHeartbeatThread);
  }

  setState(state: HeartbeatState): void {
    this.thread?.postMessage({ type: 'state', state } satisfies ToHeartbeatThread);
  }

  async stop(): Promise<void> {
    const thread = this.thread;
    this.thread = undefined;
    if (!thread) return;
    const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
    thread.postMessage({ type: 'stop' } satisfies ToHeartbeatThread);
    const timer = setTimeout(() => void thread.terminate(), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
