#!/usr/bin/env node
// Dependency-free Dockerfile lint (hadolint is not available on dev machines or CI).
//
//   node scripts/lint-dockerfiles.mjs [files...]     (default: Dockerfile.orchestrator Dockerfile.worker)
//
// Prints `file:line: message` per finding and `dockerfile lint: N problems`; exits 1 when N > 0.
// `lintDockerfile(text, fileName)` returns the findings ({ file, line, message }) for tests.
//
// A file may opt out of the non-root rule with a comment line `# lint: allow-root <reason>`
// (the GPU worker runs as root because provider volumes are root-owned).

import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Variables a RUN may read without declaring them: set by the shell, Docker or our base images. */
const AMBIENT_VARS = new Set([
  'PATH', 'HOME', 'HOSTNAME', 'PWD', 'OLDPWD', 'USER', 'SHELL', 'TERM', 'LANG', 'LC_ALL', 'IFS', 'TMPDIR',
  'LD_LIBRARY_PATH', 'NODE_VERSION', 'YARN_VERSION', 'CUDA_VERSION', 'DEBIAN_FRONTEND',
]);
/** Build args Docker predefines without an ARG line. */
const PREDEFINED_ARGS = new Set([
  'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY',
  'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy',
]);
/** Instructions whose arguments Docker itself expands ($VAR / ${VAR}); RUN/CMD are expanded by the shell. */
const DOCKER_EXPANDED = new Set(['ADD', 'COPY', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR', 'ONBUILD']);
const KNOWN = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER',
  'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
]);

/** Joins continuation lines; returns instructions with the line number where each starts. */
export function parseDockerfile(text) {
  const lines = text.split(/\r?\n/);
  const instructions = [];
  let current = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const trimmed = raw.trim();
    if (current) {
      // Comment and blank lines inside a continuation are dropped by Docker.
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const cont = /\\\s*$/.test(raw);
      current.text += ' ' + (cont ? raw.replace(/\\\s*$/, '') : raw).trim();
      if (!cont) {
        instructions.push(current);
        current = null;
      }
      continue;
    }
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const cont = /\\\s*$/.test(raw);
    const body = cont ? raw.replace(/\\\s*$/, '') : raw;
    const entry = { line: i + 1, text: body.trim() };
    if (cont) current = entry;
    else instructions.push(entry);
  }
  if (current) instructions.push({ ...current, unterminated: true });
  return instructions.map((ins) => {
    const m = /^(\S+)\s*([\s\S]*)$/.exec(ins.text);
    return { line: ins.line, keyword: m[1].toUpperCase(), args: m[2].trim(), unterminated: !!ins.unterminated };
  });
}

/** Names of $VAR / ${VAR} / ${VAR:-x} references, skipping \$ escapes. */
function referencedVars(s) {
  const out = [];
  const re = /(\\?)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))/g;
  let m;
  while ((m = re.exec(s))) {
    if (m[1]) continue;
    out.push(m[2] ?? m[3]);
  }
  return out;
}

/** Variables a shell command assigns itself (x=..., for x in, read x, export x=...). */
function shellAssigned(s) {
  const out = new Set();
  for (const m of s.matchAll(/(?:^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)=/g)) out.add(m[1]);
  for (const m of s.matchAll(/\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b/g)) out.add(m[1]);
  for (const m of s.matchAll(/\bread\s+(?:-\w+\s+)*([A-Za-z_][A-Za-z0-9_ ]*)/g)) {
    for (const name of m[1].trim().split(/\s+/)) out.add(name);
  }
  return out;
}

/** Resolves $VAR / ${VAR} / ${VAR:-default} against a map; null when something stays unresolved. */
function expand(s, vars) {
  let unresolved = null;
  const result = s.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_, a, dflt, b) => {
    const name = a ?? b;
    const value = vars.get(name);
    if (value !== undefined && value !== '') return value;
    if (dflt !== undefined) return dflt;
    unresolved = name;
    return '';
  });
  return unresolved ? { value: null, unresolved } : { value: result, unresolved: null };
}

/** KEY=VALUE pairs of an ENV/ARG/LABEL argument list (handles quotes and the legacy `ENV KEY value`). */
function parsePairs(args, legacyAllowed) {
  const pairs = [];
  let i = 0;
  const s = args;
  const firstToken = /^\S+/.exec(s)?.[0] ?? '';
  if (legacyAllowed && !firstToken.includes('=')) {
    const rest = s.slice(firstToken.length).trim();
    return [{ name: firstToken, value: rest, hasValue: rest !== '' }];
  }
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i])) i++;
    if (i >= s.length) break;
    let name = '';
    while (i < s.length && s[i] !== '=' && !/\s/.test(s[i])) name += s[i++];
    if (s[i] !== '=') {
      pairs.push({ name, value: '', hasValue: false });
      continue;
    }
    i++;
    let value = '';
    while (i < s.length && !/\s/.test(s[i])) {
      const q = s[i];
      if (q === '"' || q === "'") {
        i++;
        while (i < s.length && s[i] !== q) {
          if (s[i] === '\\' && q === '"' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
    }
    pairs.push({ name, value, hasValue: true });
  }
  return pairs;
}

function looksSecret(name) {
  const upper = name.toUpperCase();
  if (/SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL/.test(upper)) return true;
  return upper.split(/_+/).some((part) => /^(API)?KEYS?$/.test(part) || /(API|ACCESS|PRIVATE)KEY$/.test(part));
}

function isJsonArrayOfStrings(s) {
  if (!s.startsWith('[')) return false;
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
  } catch {
    return false;
  }
}

/** Splits `--flag=value` options off the front of an instruction's arguments. */
function splitFlags(args) {
  const flags = new Map();
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!m) break;
    flags.set(m[1], m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

/**
 * Lints one Dockerfile. Returns [{ file, line, message }], empty when clean.
 * @param {string} text
 * @param {string} [fileName]
 */
export function lintDockerfile(text, fileName = 'Dockerfile') {
  const findings = [];
  const report = (line, message) => findings.push({ file: fileName, line, message });
  const allowRoot = /^\s*#\s*lint:\s*allow-root\b/m.test(text);
  const instructions = parseDockerfile(text);

  const globalArgs = new Map(); // ARGs before the first FROM: name -> default ('' when none)
  const stages = []; // { name, index, line, env:Set, args:Set, user, userLine }
  let stage = null;

  for (const ins of instructions) {
    const { line, keyword, args } = ins;
    if (ins.unterminated) report(line, `${keyword} ends with a line continuation (\\) and nothing after it`);
    if (!KNOWN.has(keyword)) {
      report(line, `unknown instruction ${keyword}`);
      continue;
    }

    if (keyword === 'ARG') {
      for (const { name, value, hasValue } of parsePairs(args, false)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) report(line, `ARG has an invalid name "${name}"`);
        if (hasValue && value !== '' && looksSecret(name)) {
          report(line, `ARG ${name} has a default that looks like a secret (build args stay in the image history); pass secrets at run time`);
        }
        if (stage) stage.args.add(name);
        else globalArgs.set(name, hasValue ? value : '');
      }
      continue;
    }

    if (keyword === 'FROM') {
      const { flags, rest } = splitFlags(args);
      void flags;
      const m = /^(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(rest);
      if (!m) {
        report(line, `FROM could not be parsed: "${args}"`);
        stage = { name: null, index: stages.length, line, env: new Set(), args: new Set(), user: null, userLine: null };
        stages.push(stage);
        continue;
      }
      const [, imageRaw, alias] = m;
      const { value: image, unresolved } = expand(imageRaw, globalArgs);
      const parent = stages.find((s) => s.name && s.name === (image ?? imageRaw).toLowerCase());
      if (unresolved) {
        report(line, `FROM ${imageRaw}: \${${unresolved}} is not a global ARG with a default (declare ARG ${unresolved}=... before the first FROM)`);
      } else if (!parent && image !== 'scratch') {
        const lastSlash = image.lastIndexOf('/');
        const nameAndTag = image.slice(lastSlash + 1);
        const digest = image.includes('@sha256:');
        const tag = nameAndTag.includes(':') ? nameAndTag.slice(nameAndTag.indexOf(':') + 1).replace(/@.*$/, '') : null;
        if (!tag && !digest) report(line, `FROM ${image} has no tag: pin a version (e.g. ${image}:<version>)`);
        else if (tag === 'latest') report(line, `FROM ${image} uses the "latest" tag: pin a version`);
      }
      if (alias && stages.some((s) => s.name === alias.toLowerCase())) report(line, `stage name "${alias}" is used twice`);
      stage = {
        name: alias ? alias.toLowerCase() : null,
        index: stages.length,
        line,
        // ENV is inherited from a parent stage; ARG is not.
        env: new Set(parent ? parent.env : []),
        args: new Set(),
        user: parent ? parent.user : null,
        userLine: parent ? parent.userLine : null,
      };
      stages.push(stage);
      continue;
    }

    if (!stage) {
      report(line, `${keyword} before the first FROM (only ARG may come first)`);
      continue;
    }

    // Variable references.
    const declared = (name) =>
      stage.args.has(name) || stage.env.has(name) || PREDEFINED_ARGS.has(name);
    const undeclaredMessage = (name) =>
      globalArgs.has(name)
        ? `\${${name}} is a global ARG; redeclare it inside this stage (ARG ${name}) to use it here`
        : `\${${name}} is used but never declared with ARG or ENV in this stage`;
    if (DOCKER_EXPANDED.has(keyword)) {
      for (const name of new Set(referencedVars(args))) {
        if (!declared(name) && !AMBIENT_VARS.has(name)) report(line, `${keyword}: ${undeclaredMessage(name)}`);
      }
    } else if (keyword === 'RUN') {
      const local = shellAssigned(args);
      for (const name of new Set(referencedVars(args))) {
        if (declared(name) || local.has(name) || AMBIENT_VARS.has(name) || /^(NV|NVIDIA|NCCL|CUDNN)_/.test(name)) continue;
        report(line, `RUN: ${undeclaredMessage(name)}`);
      }
    }

    switch (keyword) {
      case 'ENV': {
        for (const { name, value, hasValue } of parsePairs(args, true)) {
          stage.env.add(name);
          if (hasValue && value !== '' && looksSecret(name)) {
            report(line, `ENV ${name} has a value and looks like a secret: pass it at run time (-e / secrets), not in the image`);
          }
        }
        break;
      }
      case 'ADD': {
        const { rest } = splitFlags(args);
        const sources = isJsonArrayOfStrings(rest) ? JSON.parse(rest).slice(0, -1) : rest.split(/\s+/).slice(0, -1);
        for (const src of sources) {
          if (/^(https?|ftp):\/\//i.test(src) || /^git@/.test(src) || /\.git(#.*)?$/.test(src)) {
            report(line, `ADD of a remote source (${src}): download in a RUN with a checksum check instead`);
          }
        }
        break;
      }
      case 'COPY': {
        const { flags } = splitFlags(args);
        if (flags.has('from')) {
          const from = flags.get('from').toLowerCase();
          const earlier = stages.slice(0, stage.index);
          const ok = /^\d+$/.test(from) ? Number(from) < stage.index : earlier.some((s) => s.name === from);
          if (!ok) report(line, `COPY --from=${flags.get('from')} does not name an earlier stage of this file`);
        }
        break;
      }
      case 'CMD':
      case 'ENTRYPOINT':
        if (!isJsonArrayOfStrings(args)) {
          report(line, `${keyword} is in shell form: use the JSON form (["executable", "arg"]) so signals reach the process`);
        }
        break;
      case 'USER':
        stage.user = args.trim();
        stage.userLine = line;
        break;
      case 'RUN': {
        const installRe = /\bapt(?:-get)?\s+(?:-\S+\s+)*install\b/g;
        let m;
        while ((m = installRe.exec(args))) {
          // The install command runs until the next && ; || or end of the RUN.
          const tail = args.slice(m.index);
          const end = tail.search(/&&|\|\||;/);
          const command = end === -1 ? tail : tail.slice(0, end);
          if (!/--no-install-recommends\b/.test(command)) {
            report(line, 'apt-get install without --no-install-recommends');
          }
          const tokens = command.split(/\s+/);
          if (!tokens.some((t) => t === '--yes' || t === '--assume-yes' || /^-[a-z]*y[a-z]*$/.test(t))) {
            report(line, 'apt-get install without -y (it would wait for an answer)');
          }
          const cleaned = args
            .slice(m.index)
            .split(/&&|\|\||;/)
            .some((cmd) => {
              const t = cmd.trim().split(/\s+/);
              if (t[0] !== 'rm') return false;
              const opts = t.filter((x) => x.startsWith('-')).join('');
              return /r/i.test(opts) && /f/.test(opts) && t.some((x) => /^\/var\/lib\/apt\/lists(\/\*?)?$/.test(x));
            });
          if (!cleaned) {
            report(line, 'apt-get install is not followed in the same RUN by rm -rf /var/lib/apt/lists/*');
          }
        }
        break;
      }
      default:
        break;
    }
  }

  if (stages.length === 0) {
    report(1, 'no FROM instruction');
  } else {
    const last = stages[stages.length - 1];
    const user = last.user ? last.user.split(':')[0] : null;
    if (!allowRoot && (user === null || user === 'root' || user === '0')) {
      report(last.userLine ?? last.line, `the final stage runs as root: add USER <non-root> (or a "# lint: allow-root <reason>" comment)`);
    }
  }
  return findings.sort((a, b) => a.line - b.line);
}

function main(argv) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  // Named files are relative to the current folder; the defaults to the repository root.
  const files = argv.length ? argv.map((f) => [f, path.resolve(f)]) : ['Dockerfile.orchestrator', 'Dockerfile.worker'].map((f) => [f, path.resolve(root, f)]);
  let problems = 0;
  for (const [file, full] of files) {
    let text;
    try {
      text = readFileSync(full, 'utf8');
    } catch (error) {
      console.log(`${file}:1: cannot read: ${error.message}`);
      problems++;
      continue;
    }
    const shown = full.startsWith(root + path.sep) ? path.relative(root, full) : file;
    for (const f of lintDockerfile(text, shown)) {
      console.log(`${f.file}:${f.line}: ${f.message}`);
      problems++;
    }
  }
  console.log(`dockerfile lint: ${problems} problems`);
  return problems ? 1 : 0;
}

const isMain = (() => {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (isMain) {
  process.exitCode = main(process.argv.slice(2));
}
