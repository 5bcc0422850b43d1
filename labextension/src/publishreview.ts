/**
 * The review of a publish: the lines of a file's diff, and the hashes of what was reviewed.
 * No DOM: unit-tested.
 */
import type { IPublishChange } from './tokens';

/** One line of a unified diff and how it is shown. */
export interface IDiffLine {
  /** The line, without its line break. */
  text: string;
  /** `add` (+), `del` (-), `hunk` (@@), `file` (---/+++) or `context`. */
  kind: 'add' | 'del' | 'hunk' | 'file' | 'context';
}

/** Split a unified diff into lines and classify each. Pure: unit-tested. */
export function diffLines(diff: string): IDiffLine[] {
  const lines = diff.split('\n');
  if (lines.length && lines[lines.length - 1] === '') {
    lines.pop();
  }
  return lines.map(text => ({
    text,
    kind:
      text.startsWith('+++') || text.startsWith('---')
        ? 'file'
        : text.startsWith('@@')
          ? 'hunk'
          : text.startsWith('+')
            ? 'add'
            : text.startsWith('-')
              ? 'del'
              : 'context'
  }));
}

/** The files a publish would write: `expect` for them (file -> reviewed SHA-256). */
export function reviewedHashes(
  changes: readonly IPublishChange[]
): Record<string, string> {
  const expect: Record<string, string> = {};
  for (const c of changes) {
    if (c.status !== 'unchanged') {
      expect[c.filename] = c.sha256;
    }
  }
  return expect;
}
