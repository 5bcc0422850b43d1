/**
 * The export error dialog lists each problem once, with the cell it concerns (issue 12.7).
 */
import { errorHeadline, parseProblem, uniqueProblems } from '../exportproblems';

describe('export problems', () => {
  it('splits the cell and line off the server wording', () => {
    expect(
      parseProblem('cell 4, line 2: `rows` is defined only in cell 3')
    ).toEqual({
      message: '`rows` is defined only in cell 3',
      cell: 4,
      line: 2
    });
    expect(parseProblem('cell 7: no DAG here')).toEqual({
      message: 'no DAG here',
      cell: 7,
      line: undefined
    });
    expect(parseProblem('the notebook has no %%dag cell')).toEqual({
      message: 'the notebook has no %%dag cell'
    });
    expect(parseProblem({ message: 'bad', cell: 2, line: 1 })).toEqual({
      message: 'bad',
      cell: 2,
      line: 1
    });
  });

  it('lists each problem once', () => {
    const problems = uniqueProblems([
      'cell 2: uses `x`',
      'cell 2: uses `x`',
      'cell 3: uses `x`'
    ]);
    expect(problems.map(p => p.cell)).toEqual([2, 3]);
  });

  it("keeps the error's headline without the problem list the server appends", () => {
    const message =
      'Cannot export nb.ipynb:\n  - cell 2: uses `x`\n  - cell 3: uses `x`';
    expect(errorHeadline(message, true)).toBe('Cannot export nb.ipynb.');
    expect(errorHeadline('Not found', false)).toBe('Not found');
  });
});
