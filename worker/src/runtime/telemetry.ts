import { execFile } from 'node:child_process';
import os from 'node:os';
import type { Telemetry } from '@avatar-fleet/contracts';

export interface GpuInfo {
  name: string;
  vramGb: number;
}

const QUERY = 'name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw';

/** Runs nvidia-smi (present on GPU hosts, absent elsewhere); undefined when it cannot answer. */
function nvidiaSmi(timeoutMs = 3_000): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', [`--query-gpu=${QUERY}`, '--format=csv,noheader,nounits'], { timeout: timeoutMs }, (error, stdout) => {
      if (error) return resolve(undefined);
      const first = stdout.split('\n').find((l) => l.trim());
      resolve(first ? first.split(',').map((s) => s.trim()) : undefined);
    });
  });
}

function numeric(value: string | undefined): number | undefined {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) ? n : undefined;
}

/** The first GPU's name and memory, for registration. */
export async function detectGpu(): Promise<GpuInfo | undefined> {
  const row = await nvidiaSmi();
  const totalMb = numeric(row?.[1]);
  return row && totalMb !== undefined ? { name: row[0]!, vramGb: Math.round((totalMb / 1024) * 10) / 10 } : undefined;
}

/** Samples GPU telemetry when nvidia-smi answers, and the host's CPU and memory always. */
export class TelemetrySampler {
  private lastCpu = os.cpus().map((c) => c.times);

  async sample(): Promise<Telemetry> {
    const row = await nvidiaSmi();
    const telemetry: Telemetry = { cpuPct: this.cpuPercent(), memUsedMb: Math.round((os.totalmem() - os.freemem()) / 1048576), memTotalMb: Math.round(os.totalmem() / 1048576) };
    if (row) {
      telemetry.gpuMemTotalMb = numeric(row[1]);
      telemetry.gpuMemUsedMb = numeric(row[2]);
      telemetry.gpuUtilPct = numeric(row[3]);
      telemetry.gpuTempC = numeric(row[4]);
      telemetry.gpuPowerW = numeric(row[5]);
    }
    return telemetry;
  }

  private cpuPercent(): number {
    const now = os.cpus().map((c) => c.times);
    let busy = 0;
    let total = 0;
    now.forEach((t, i) => {
      const p = this.lastCpu[i] ?? t;
      const idle = t.idle - p.idle;
      const all = t.user + t.nice + t.sys + t.irq + t.idle - (p.user + p.nice + p.sys + p.irq + p.idle);
      busy += all - idle;
      total += all;
    });
    this.lastCpu = now;
    return total > 0 ? Math.min(100, Math.round((busy / total) * 1000) / 10) : 0;
  }
}
