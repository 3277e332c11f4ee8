import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { schemaDrift } from '../database/schema-drift';
import { resolveDatabaseUrl } from './database-url';

/**
 * `npm run migration:generate -- <verb-noun>`: writes migrations/src/<timestamp>-<verb-noun>.ts with the
 * SQL that brings the migrated schema in line with the entities. Review it before committing.
 */
async function main(): Promise<void> {
  const name = process.argv[2];
  if (!name || !/^[a-z]+(-[a-z0-9]+)+$/.test(name)) throw new Error('give a kebab-case <verb-noun> name, e.g. add-job-tags');
  const { url, embedded } = await resolveDatabaseUrl();
  try {
    const drift = await schemaDrift(url);
    if (drift.up.length === 0) {
      console.log('entities and migrations agree; nothing to generate');
      return;
    }
    const stamp = Date.now();
    const className = name.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') + stamp;
    const lines = (queries: string[]) => queries.map((q) => `    await db.query(${JSON.stringify(q)});`).join('\n');
    const file = path.resolve(__dirname, '../../../../migrations/src', `${stamp}-${name}.ts`);
    writeFileSync(
      file,
      `import type { MigrationInterface, QueryRunner } from 'typeorm';\n\n` +
        `export class ${className} implements MigrationInterface {\n` +
        `  name = '${className}';\n\n` +
        `  async up(db: QueryRunner): Promise<void> {\n${lines(drift.up)}\n  }\n\n` +
        `  async down(db: QueryRunner): Promise<void> {\n${lines(drift.down.reverse())}\n  }\n}\n`,
    );
    console.log(`wrote ${file}; add it to migrations/src/index.ts`);
  } finally {
    await embedded?.stop();
  }
}

main().catch((error: Error) => {
  console.error(`migration:generate failed: ${error.message}`);
  process.exit(1);
});
