/**
 * `npm run models:check -- DIR`: checks a MuseTalk model folder (DIR itself, or DIR/musetalk when
 * DIR is a MODEL_DIR) against the contract in docs/models.md and prints one verdict per file. The
 * first step after exporting real weights. Exit status 0 when every file passes, 1 when any fails,
 * 2 for a usage error.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { checkModelSet } from '../inference/model-check';
import { MUSETALK_FOLDER } from '../inference/musetalk-contract';

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const USAGE = 'usage: models-check DIR   (a folder with the four musetalk_*.onnx files and metadata.json, or a MODEL_DIR holding musetalk/)';

export async function main(argv: readonly string[], out: (line: string) => void = console.log, err: (line: string) => void = console.error): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    out(USAGE);
    return 0;
  }
  if (argv.length !== 1 || argv[0]!.startsWith('-')) {
    err(`models-check: ${argv.length === 0 ? 'which folder?' : `expected one folder, got ${argv.join(' ')}`}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const given = path.resolve(argv[0]!);
  if (!existsSync(given) || !statSync(given).isDirectory()) {
    err(`models-check: ${given} is not a folder\n${USAGE}`);
    return EXIT_USAGE;
  }
  const dir = existsSync(path.join(given, MUSETALK_FOLDER)) ? path.join(given, MUSETALK_FOLDER) : given;
  out(`models:check ${dir}`);
  const verdicts = await checkModelSet(dir);
  for (const v of verdicts) {
    out(`  ${v.ok ? 'ok  ' : 'FAIL'}  ${v.file}: ${v.detail}`);
    for (const note of v.notes) out(`        note: ${note}`);
  }
  const failed = verdicts.filter((v) => !v.ok).length;
  out(failed === 0 ? `passed: all ${verdicts.length} files meet the contract` : `failed: ${failed} of ${verdicts.length} files do not meet the contract (docs/models.md)`);
  return failed === 0 ? 0 : EXIT_FAILED;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(`models-check: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = EXIT_FAILED;
    },
  );
}
