#!/usr/bin/env node
// The variable tables of docs/configuration.md, generated from the config classes.
//
//   npm run docs:config                          build, then rewrite the tables
//   node scripts/config-reference.mjs --check    after a build: exit 1 when the tables differ from the code
//
// Each table sits between `<!-- config-reference:NAME ... -->` and `<!-- /config-reference:NAME -->`;
// the rest of the file is hand-written and kept as it is. A table lists the class's properties in
// declaration order. Its columns come from the code: the description, secret flag, default in words
// and "required when" from `@EnvVar` (contracts/src/env-var.ts); the default from the property
// initializer or `@EnvVar`'s `default` (a constant the loader applies); "required" and the allowed
// values from the class-validator rules. scripts/config-reference.test.mjs fails when the committed
// file differs from what this renders, or when a variable lacks a description.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REFERENCE = path.join(root, 'docs', 'configuration.md');
const REGENERATE = 'run `npm run docs:config`';

/** The config classes, one table each. `names`: the export listing every variable the loader reads. */
const SOURCES = [
  { block: 'orchestrator', source: 'orchestrator/src/config/orchestrator.config.ts', className: 'OrchestratorConfig' },
  { block: 'worker', source: 'worker/src/config/worker.config.ts', className: 'WorkerEnv', names: 'WORKER_ENV_NAMES' },
];
/** Variables whose names say they are credentials; each must be marked secret. */
const LOOKS_SECRET = /KEY|SECRET|PASSWORD|TOKEN/;

function load(relativeDist) {
  const file = path.join(root, relativeDist);
  try {
    return createRequire(file)(file);
  } catch (error) {
    throw new Error(`cannot load ${relativeDist} (run \`npm run build\` first): ${error.message}`);
  }
}

function loadSource({ block, source, className, names }) {
  const mod = load(source.replace(/^(\w+)\/src\//, '$1/dist/src/').replace(/\.ts$/, '.js'));
  const cls = mod[className];
  const { envVarDocs } = load('contracts/dist/src/env-var.js');
  // class-validator keeps its metadata in one global store, whichever copy registered it.
  const { getMetadataStorage } = createRequire(path.join(root, source))('class-validator');
  const rules = getMetadataStorage().getTargetValidationMetadatas(cls, '', true, false);
  return { block, source, className, cls, docs: envVarDocs(cls), instance: new cls(), rules, names: names ? [...mod[names]] : undefined };
}

/** What keeps the reference from being complete; empty when every variable is documented. */
export function configProblems() {
  return SOURCES.map(loadSource).flatMap(sourceProblems);
}

function sourceProblems({ className, cls, docs, instance, rules, names }) {
  const problems = [];
  const validated = new Set(rules.map((r) => r.propertyName));
  const declared = new Set([...validated, ...Object.keys(instance)]);
  for (const name of declared) {
    if (!docs.has(name)) problems.push(`${className}.${name} has no @EnvVar description`);
  }
  for (const [name, doc] of docs) {
    if (!declared.has(name)) problems.push(`${className}.${name} is documented but neither validated nor initialised`);
    if (typeof doc.description !== 'string' || doc.description.trim() === '') problems.push(`${className}.${name} has an empty description`);
    if (doc.default !== undefined && instance[name] !== undefined) {
      problems.push(`${className}.${name} has a default in @EnvVar and an initializer; keep the initializer`);
    }
    if (LOOKS_SECRET.test(name) && !doc.secret) problems.push(`${className}.${name} looks like a credential but is not marked secret`);
  }
  if (names) {
    for (const name of names) if (!docs.has(name)) problems.push(`${name} is read (in the names list) but ${className} does not document it`);
    for (const name of docs.keys()) if (!names.includes(name)) problems.push(`${className}.${name} is documented but not in the names list the loader reads`);
  }
  return problems;
}

const code = (value) => `\`${value}\``;
const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

function defaultCell(name, doc, instance, rules) {
  if (doc.defaultText) return doc.defaultText;
  const value = doc.default ?? instance[name];
  if (value === '') return 'empty';
  if (value !== undefined) return code(value);
  if (doc.requiredWhen) return `required ${doc.requiredWhen}`;
  const optional = rules.some((r) => r.propertyName === name && r.type === 'conditionalValidation');
  return optional ? 'unset' : 'required';
}

function valuesCell(name, rules) {
  const rule = (kind) => rules.find((r) => r.propertyName === name && r.name === kind);
  const isIn = rule('isIn');
  if (isIn) return isIn.constraints[0].map(code).join(', ');
  const min = rule('min')?.constraints[0];
  const max = rule('max')?.constraints[0];
  if (min !== undefined && max !== undefined) return `${min}–${max}`;
  if (min !== undefined) return `≥ ${min}`;
  if (rule('isNumberString')) return 'a number';
  return '';
}

function table({ block, source, className, docs, instance, rules }) {
  const lines = [
    `<!-- config-reference:${block}: generated by \`npm run docs:config\` from ${className} (${source}); edit the class, not this table -->`,
    '| variable | default | values | meaning |',
    '| --- | --- | --- | --- |',
  ];
  for (const [name, doc] of docs) {
    const meaning = doc.description + (doc.secret ? ' **Secret.**' : '');
    lines.push(`| ${code(name)} | ${cell(defaultCell(name, doc, instance, rules))} | ${cell(valuesCell(name, rules))} | ${cell(meaning)} |`);
  }
  lines.push(`<!-- /config-reference:${block} -->`);
  return lines.join('\n');
}

/** `text` (the reference) with every generated table rendered again from the code. */
export function renderReference(text) {
  const sources = SOURCES.map(loadSource);
  const problems = sources.flatMap(sourceProblems);
  if (problems.length) throw new Error(`the configuration reference cannot be generated:\n  ${problems.join('\n  ')}`);
  let out = text;
  for (const source of sources) {
    const block = new RegExp(`<!-- config-reference:${source.block}\\b[^\\n]*-->\\n[\\s\\S]*?<!-- /config-reference:${source.block} -->`);
    if (!block.test(out)) throw new Error(`docs/configuration.md has no <!-- config-reference:${source.block} --> ... <!-- /config-reference:${source.block} --> block`);
    out = out.replace(block, () => table(source));
  }
  return out;
}

/** Where two versions of the reference first differ, for a message a person can act on. */
export function firstDifference(current, expected) {
  const a = current.split('\n');
  const b = expected.split('\n');
  const i = a.findIndex((line, n) => line !== b[n]);
  const at = i === -1 ? a.length : i;
  return `line ${at + 1}:\n  committed: ${a[at] ?? '(end of file)'}\n  from code: ${b[at] ?? '(end of file)'}`;
}

/** `process.env.NAME` reads in the orchestrator's and the worker's sources that the reference never names. */
export function undocumentedEnvReads(text) {
  const found = new Map();
  const walk = (dir) => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (full.endsWith('.ts')) {
        for (const m of readFileSync(full, 'utf8').matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])/g)) {
          const name = m[1] ?? m[2];
          if (!found.has(name)) found.set(name, path.relative(root, full));
        }
      }
    }
  };
  walk(path.join(root, 'orchestrator', 'src'));
  walk(path.join(root, 'worker', 'src'));
  return [...found].filter(([name]) => !text.includes(code(name))).map(([name, file]) => `${name} (read in ${file})`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const current = readFileSync(REFERENCE, 'utf8');
    const expected = renderReference(current);
    const missing = undocumentedEnvReads(expected);
    if (missing.length) console.error(`docs/configuration.md does not mention: ${missing.join(', ')}`);
    if (process.argv.includes('--check')) {
      if (current !== expected) {
        console.error(`docs/configuration.md differs from the config classes at ${firstDifference(current, expected)}\n${REGENERATE}`);
        process.exit(1);
      }
      console.log('docs/configuration.md matches the config classes');
    } else if (current === expected) {
      console.log('docs/configuration.md is up to date');
    } else {
      writeFileSync(REFERENCE, expected);
      console.log('docs/configuration.md: tables rewritten from the config classes');
    }
    if (missing.length) process.exit(1);
  } catch (error) {
    console.error(error.message);
    process.exit(1);
  }
}
