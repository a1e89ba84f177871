/** Writes docs/options.md from the option declarations (`npm run docs:options`). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderOptionsDoc } from './options-doc';

const file = join(__dirname, '..', 'docs', 'options.md');
writeFileSync(file, renderOptionsDoc());
process.stdout.write(`wrote ${file}\n`);
