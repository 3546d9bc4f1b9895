// Copies the chart library's browser bundle (and its licence) from node_modules into the jar's resources.
// Usage: node copy-dist.mjs OUT_DIR   (Maven passes target/classes/dashboard/vendor)
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const out = resolve(process.argv[2] ?? 'dist');
mkdirSync(out, { recursive: true });
const files = [
  ['node_modules/chart.js/dist/chart.umd.min.js', 'chart.umd.min.js'],
  ['node_modules/chart.js/LICENSE.md', 'chart.js-LICENSE.md'],
];
for (const [from, to] of files) {
  copyFileSync(from, join(out, to));
  console.log(`dashboard: ${from} -> ${join(out, to)} (${statSync(from).size} bytes)`);
}
