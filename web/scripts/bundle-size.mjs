// Measures what a first visit downloads — index.html and the scripts and
// styles it loads before any dynamic import — gzipped, and fails above the
// budget (400 KB). The consoles (noVNC, xterm.js) and the create wizard are
// dynamic imports and not counted.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../../internal/webui/dist/', import.meta.url).pathname;
const budget = 400 * 1024;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const files = ['index.html', ...[...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1])];
let total = 0;
for (const f of files) {
  const gz = gzipSync(readFileSync(join(dist, f)), { level: 9 }).length;
  total += gz;
  console.log(`${(gz / 1024).toFixed(1).padStart(8)} KB  ${f}`);
}
console.log(`${(total / 1024).toFixed(1).padStart(8)} KB  initial load, gzipped (budget ${budget / 1024} KB)`);
if (total > budget) {
  console.error('the initial bundle is over budget: move more behind dynamic imports');
  process.exit(1);
}
