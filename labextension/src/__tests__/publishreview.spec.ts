import { diffLines, reviewedHashes } from '../publishreview';

const DIFF = `--- staging/shipped.py (now)
+++ staging/shipped.py (after publishing)
@@ -1,3 +1,3 @@
 extract = 1
-load = "v1"
+load = "v2"
 # <b>not html</b>
`;

describe('the review of a publish', () => {
  it('classifies the lines of a unified diff', () => {
    expect(diffLines(DIFF).map(l => l.kind)).toEqual([
      'file',
      'file',
      'hunk',
      'context',
      'del',
      'add',
      'context'
    ]);
    expect(diffLines(DIFF)[6].text).toBe(' # <b>not html</b>');
    expect(diffLines('')).toEqual([]);
  });

  it('expects the hashes of the files that change, only', () => {
    const sha = (c: string): string => c.repeat(64);
    expect(
      reviewedHashes([
        { filename: 'a.py', status: 'added', sha256: sha('a'), diff: '' },
        { filename: 'b.py', status: 'unchanged', sha256: sha('b'), diff: '' },
        { filename: 'c.py', status: 'changed', sha256: sha('c'), diff: '' }
      ])
    ).toEqual({ 'a.py': sha('a'), 'c.py': sha('c') });
  });
});
