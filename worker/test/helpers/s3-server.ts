import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface S3TestServer {
  endpoint: string;
  bucket: string;
  region: string;
  /** s3rver checks signatures against this fixed pair. */
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

/**
 * s3rver 3.7.1 on 127.0.0.1, a free port and a fresh temp folder, with one bucket. It runs in a child
 * process started with --openssl-legacy-provider: its ListObjectsV2 continuation tokens are DES-encrypted,
 * which OpenSSL 3 refuses otherwise (every truncated listing would be a 500).
 */
export async function startS3Server(bucket = 'avatar-test'): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 's3rver-'));
  const script = `
    const S3rver = require(${JSON.stringify(require.resolve('s3rver'))});
    const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[1], configureBuckets: [{ name: process.argv[2] }] });
    server.run().then((address) => console.log(JSON.stringify({ port: address.port })));
    // The parent closing our stdin (it stopped or died) ends us.
    process.stdin.on('end', () => process.exit(0)).resume();
  `;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script, directory, bucket], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`s3rver exited early with code ${String(code)}`);
  });
  const [line] = (await Promise.race([once(lines, 'line'), exited])) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    async stop() {
      if (child.exitCode === null) {
        const gone = once(child, 'exit');
        child.stdin.end();
        await gone;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
