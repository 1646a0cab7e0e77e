import fs from 'node:fs';
import path from 'node:path';
import { renderNoderoleDiagram, renderStateDiagram, withStateDiagram } from '../src/domain/state-diagram';

// Prints the diagram, or with --write puts it into README.md between its markers.
const readme = path.join(__dirname, '..', 'README.md');
if (process.argv.includes('--write')) {
  fs.writeFileSync(readme, withStateDiagram(fs.readFileSync(readme, 'utf8')));
  console.log(`updated the state diagram in ${readme}`);
} else {
  console.log(`${renderStateDiagram()}\n\n${renderNoderoleDiagram()}`);
}
