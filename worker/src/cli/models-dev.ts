/**
 * `node worker/dist/src/cli/models-dev.js [--dir <MODEL_DIR>] [--precision fp32|fp16] [--batch N|dynamic] [--seed N] [--force]`
 *
 * Writes the DEV MuseTalk model set (generated, random weights; see inference/dev-models.ts) into
 * `<MODEL_DIR>/musetalk/`, so the worker runs without the private model bucket. It refuses to
 * replace a folder that holds anything other than a dev set (a real export is gigabytes fetched
 * from a private bucket; losing it by a stray command is expensive) unless --force is given.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeDevModelSet, type DevPrecision } from '../inference/dev-models';
import { MUSETALK_FOLDER } from '../inference/musetalk-contract';

export const EXIT_USAGE = 2;
export const EXIT_REFUSED = 3;

export interface ModelsDevArgs {
  modelDir: string;
  precision: DevPrecision;
  batchSize: number | null;
  seed: number;
  force: boolean;
}

const USAGE =
  'usage: models-dev [--dir <MODEL_DIR>] [--precision fp32|fp16] [--batch N|dynamic] [--seed N] [--force]\n' +
  '  --dir        model folder (default: $MODEL_DIR or .data/models); writes <dir>/musetalk/\n' +
  '  --precision  fp32 (default) or fp16\n' +
  '  --batch      UNet/VAE batch size fixed in the graphs (default 8), or "dynamic"\n' +
  '  --seed       weight seed (default 1)\n' +
  '  --force      replace a folder that is not a dev set';

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ModelsDevArgs | 'help' {
  const args: ModelsDevArgs = { modelDir: env.MODEL_DIR || '.data/models', precision: 'fp32', batchSize: 8, seed: 1, force: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--dir':
        args.modelDir = value();
        break;
      case '--precision': {
        const p = value();
        if (p !== 'fp32' && p !== 'fp16') throw new UsageError(`--precision must be fp32 or fp16, not ${p}`);
        args.precision = p;
        break;
      }
      case '--batch': {
        const v = value();
        if (v === 'dynamic') args.batchSize = null;
        else if (/^[1-9]\d{0,3}$/.test(v) && Number(v) <= 1024) args.batchSize = Number(v);
        else throw new UsageError(`--batch must be an integer from 1 to 1024 or "dynamic", not ${v}`);
        break;
      }
      case '--seed': {
        const v = value();
        if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`--seed must be an integer from 0 to 4294967295, not ${v}`);
        args.seed = Number(v);
        break;
      }
      case '--force':
        args.force = true;
        break;
      default:
        throw new UsageError(`unknown argument ${flag}`);
    }
  }
  return args;
}

/**
 * Why `folder` must not be overwritten without --force, or undefined when it is safe: absent,
 * empty, or a set whose metadata.json says `"dev": true`.
 */
export function overwriteRefusal(folder: string): string | undefined {
  if (!existsSync(folder)) return undefined;
  const metaFile = path.join(folder, 'metadata.json');
  if (!existsSync(metaFile)) {
    const models = readdirSync(folder).filter((f) => f.endsWith('.onnx'));
    return models.length > 0 ? `${folder} holds ${models.join(', ')} but no metadata.json, so it may be a real model set` : undefined;
  }
  let meta: unknown;
  try {
    meta = JSON.parse(readFileSync(metaFile, 'utf8'));
  } catch {
    return `${metaFile} is not valid JSON, so the folder may hold a real model set`;
  }
  if (typeof meta === 'object' && meta !== null && (meta as { dev?: unknown }).dev === true) return undefined;
  return `${folder} holds a model set that is not marked "dev": true (a real export)`;
}

export async function main(argv: readonly string[], out: (line: string) => void = console.log, err: (line: string) => void = console.error): Promise<number> {
  let args: ModelsDevArgs | 'help';
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`models-dev: ${error.message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    out(USAGE);
    return 0;
  }
  const folder = path.resolve(args.modelDir, MUSETALK_FOLDER);
  const refusal = overwriteRefusal(folder);
  if (refusal && !args.force) {
    err(`models-dev: refusing to overwrite: ${refusal}. Pass --force to replace it with a generated dev set.`);
    return EXIT_REFUSED;
  }
  if (refusal) out(`models-dev: --force: replacing (${refusal})`);
  const started = Date.now();
  const report = await writeDevModelSet(folder, { precision: args.precision, batchSize: args.batchSize, seed: args.seed });
  out(`models-dev: wrote a DEV MuseTalk model set (random weights, not real lip-sync) to ${report.dir}`);
  out(`  precision ${report.precision}, batch ${report.batchSize ?? 'dynamic'} (whisper: dynamic), opset ${report.metadata.opset}, seed ${report.seed}`);
  for (const f of report.files) out(`  ${f.name.padEnd(32)} ${formatBytes(f.bytes).padStart(9)}  sha256 ${f.sha256.slice(0, 12)}`);
  out(`  done in ${Date.now() - started} ms; REQUIRE_REAL_MODELS=true workers refuse this set`);
  return 0;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(`models-dev: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
