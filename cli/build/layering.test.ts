/**
 * The layering of the tree, checked on every import of every source file (tests excepted):
 *
 *   cli ──► controlplane (only the `skiff controlplane` verb: main.ts, defaults.ts)
 *    ├──► node-agent/agent/main.ts (only the `skiff agent` verb), node-agent/hollow/main.ts
 *    │      (only `skiff agent --hollow`)
 *    │ └──► node-agent/runtime (only through its façade, runtime.ts, or the façade's image half,
 *    │      image-side.ts, which loads no container code)
 *    ▼
 *   proto ◄── controlplane      node-agent ──► proto
 *
 * - proto (the API contract and what every side shares) imports none of the others;
 * - the control plane never imports the node agent or the CLI, and the node agent never imports
 *   the control plane or the CLI;
 * - no product code imports test/.
 *
 * KNOWN lists the imports that break these rules today, each with what replaces it. An entry that
 * no longer occurs fails the test too, so the list only shrinks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { packageRoot } from '../../proto/package-info.js';

const KNOWN: Record<string, string> = {};

const ROOTS = ['proto', 'controlplane', 'node-agent', 'cli'];
const IMPORT = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.c?ts$/.test(entry.name) && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

function allowed(from: string, to: string): boolean {
  const [fromTop] = from.split('/');
  const [toTop] = to.split('/');
  if (toTop === 'test') return false;
  if (fromTop === toTop || toTop === 'proto') return true;
  if (fromTop === 'cli' && toTop === 'controlplane')
    return to === 'controlplane/main.ts' || to === 'controlplane/defaults.ts';
  if (fromTop === 'cli' && toTop === 'node-agent')
    return (
      to === 'node-agent/runtime/runtime.ts' ||
      to === 'node-agent/runtime/image-side.ts' ||
      to === 'node-agent/agent/main.ts' ||
      to === 'node-agent/hollow/main.ts'
    );
  return false;
}

test('imports follow the layering; the known exceptions are exactly those listed', () => {
  const root = packageRoot();
  const broken = new Set<string>();
  for (const top of ROOTS) {
    for (const file of sources(join(root, top))) {
      const from = relative(root, file);
      for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const to = normalize(join(dirname(from), match[1]!)).replace(/\.c?js$/, (ext) =>
          ext === '.cjs' ? '.cts' : '.ts',
        );
        if (!allowed(from, to)) broken.add(`${from} -> ${to}`);
      }
    }
  }
  const unexpected = [...broken].filter((edge) => !(edge in KNOWN));
  assert.deepEqual(
    unexpected,
    [],
    'imports that break the layering (see the comment at the top of this file)',
  );
  const stale = Object.keys(KNOWN).filter((edge) => !broken.has(edge));
  assert.deepEqual(stale, [], 'known exceptions that no longer occur: remove them from KNOWN');
});
