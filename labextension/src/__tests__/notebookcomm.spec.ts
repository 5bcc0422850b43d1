/**
 * What the front end tells the kernel over comm `kyte.notebook` (issue 11.1): every code cell
 * starting with %%dag, run or not, by cell id; and what it shows of the kernel's answer.
 */
import { dagCells, droppedMessages } from '../notebookcomm';

describe('the notebook cell list', () => {
  it('holds every %%dag code cell, in order, and nothing else', () => {
    const cells = dagCells([
      { cell_type: 'code', id: 'a', source: 'x = 1' },
      { cell_type: 'code', id: 'b', source: '%%dag\nwith DAG("one"): ...' },
      { cell_type: 'markdown', id: 'c', source: '%%dag in markdown' },
      { cell_type: 'code', id: 'd', source: '  %%dag --name two\n...' },
      { cell_type: 'code', id: 'e', source: '%%dagger' },
      { cell_type: 'code', id: 'f', source: '%%dag' }
    ]);
    expect(cells.map(c => c.cell_id)).toEqual(['b', 'd', 'f']);
    expect(cells[0].source).toBe('%%dag\nwith DAG("one"): ...');
  });

  it("shows the messages of the kernel's `dropped` answer only", () => {
    expect(
      droppedMessages({
        type: 'dropped',
        dag_ids: ['etl'],
        messages: ['cell 4 was deleted; its DAG etl was dropped']
      })
    ).toEqual(['cell 4 was deleted; its DAG etl was dropped']);
    expect(droppedMessages({ type: 'other', messages: ['x'] })).toEqual([]);
    expect(droppedMessages(null)).toEqual([]);
  });
});
