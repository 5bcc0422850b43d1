/**
 * The front end's REST types (src/schema.ts) are generated from docs/openapi.yaml by
 * openapi-typescript (`jlpm generate:api`). This fails when the committed file is not what a
 * fresh generation writes, so the types never drift from the API's one schema.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const bin = (name: string): string =>
  path.join(ROOT, 'node_modules', '.bin', name);

describe('src/schema.ts', () => {
  it('is what `jlpm generate:api` writes from docs/openapi.yaml', () => {
    const generated = execFileSync(
      bin('openapi-typescript'),
      [path.join(ROOT, '..', 'docs', 'openapi.yaml')],
      { cwd: ROOT, encoding: 'utf-8', stdio: ['ignore', 'pipe', 'pipe'] }
    );
    const formatted = execFileSync(
      bin('prettier'),
      ['--stdin-filepath', path.join(ROOT, 'src', 'schema.ts')],
      { cwd: ROOT, input: generated, encoding: 'utf-8' }
    );
    const committed = fs.readFileSync(
      path.join(ROOT, 'src', 'schema.ts'),
      'utf-8'
    );
    // Not toEqual: a diff of a 600-line file helps nobody; say what to do instead.
    if (formatted !== committed) {
      throw new Error(
        'src/schema.ts differs from docs/openapi.yaml: run `jlpm generate:api` in labextension/ and commit the result.'
      );
    }
  }, 60000);
});
