/**
 * `bash scripts/run.sh` prints the tour's URL, logged in (issue 12.9): the notebook's
 * /lab/tree URL with the token the server is started with, on the port it listens on.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const REPO = path.join(__dirname, '..', '..', '..');

describe('scripts/run.sh', () => {
  it("prints the tour notebook's URL with the server's token and port", () => {
    const out = execFileSync(
      'bash',
      [path.join(REPO, 'scripts', 'run.sh'), '--print-url'],
      {
        encoding: 'utf-8',
        env: { ...process.env, KYTE_PORT: '9321', KYTE_TOKEN: 'tok123' }
      }
    );
    const url = /https?:\/\/\S+/.exec(out)?.[0];
    expect(url).toBe(
      'http://127.0.0.1:9321/lab/tree/examples/tour.ipynb?token=tok123'
    );
    // The server is started with that token and port (and no other port).
    expect(out).toContain('--IdentityProvider.token=tok123');
    expect(out).toContain('--port=9321');
    expect(out).toContain('--port-retries=0');
    expect(fs.existsSync(path.join(REPO, 'examples', 'tour.ipynb'))).toBe(true);
  });
});
