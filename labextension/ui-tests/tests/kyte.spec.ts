/**
 * The real flow: a notebook, its kernel with the Kyte magics, the Kyte server extension and
 * the sidebar. Define a DAG with %%dag, run it with %run_dag, watch states and logs, run a task
 * from its context menu.
 */
import { IJupyterLabPageFixture, expect, test } from '@jupyterlab/galata';

import { KyteHelper, STATE_RGB } from './helpers/KyteHelper';

/** A DAG with a task group, a task that fails on demand and a slow task. */
const DAG_CELL = `%%dag
import time
from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task


@task
def extract():
    print("hello from extract")
    return [1, 2, 3]


@task
def double(values):
    return [v * 2 for v in values]


@task
def check(values):
    print("checking", values)
    if SHOULD_FAIL:
        raise ValueError("asked to fail")
    time.sleep(3)
    return sum(values)


@task
def load(total):
    print("loaded", total)


with DAG("kyte_ui", start_date=datetime(2025, 1, 1), schedule=None):
    values = extract()
    with TaskGroup("transform"):
        total = check(double(values))
    load(total)`;

/** The test notebook of the current test. */
let NOTEBOOK = 'kyte_ui.ipynb';

const TASKS = ['extract', 'transform.double', 'transform.check', 'load'];

/**
 * Write a notebook of code cells into the test folder and open it. (Typing cells in the editor
 * would auto-indent the Python.)
 */
async function openNotebook(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name: string,
  cells: string[]
): Promise<void> {
  const notebook = {
    cells: cells.map(source => ({
      cell_type: 'code',
      execution_count: null,
      metadata: {},
      outputs: [],
      source
    })),
    metadata: {
      kernelspec: {
        display_name: 'Python 3 (ipykernel)',
        language: 'python',
        name: 'python3'
      }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
  NOTEBOOK = name;
  await page.contents.uploadContent(
    JSON.stringify(notebook),
    'text',
    `${tmpPath}/${name}`
  );
  await page.notebook.openByPath(`${tmpPath}/${name}`);
  await page.notebook.activate(name);
}

/** Run a cell of the test notebook to completion and return its output area. */
async function runCell(page: IJupyterLabPageFixture, index: number) {
  // The log viewer may be the active tab: cells run in the active notebook.
  await page.notebook.activate(NOTEBOOK);
  await page.notebook.runCell(index);
  await expect(
    page.locator('.jp-Notebook .jp-Cell').nth(index).locator('.jp-InputPrompt')
  ).toHaveText(/\[\d+\]/);
  return page
    .locator('.jp-Notebook .jp-Cell')
    .nth(index)
    .locator('.jp-OutputArea');
}

test.describe.configure({ mode: 'serial' });

test('define, run, watch, read logs and re-run a task from the sidebar', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(6 * 60 * 1000);
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_ui.ipynb', [
    'SHOULD_FAIL = True',
    DAG_CELL,
    'r = %run_dag kyte_ui\nr.task_states',
    'SHOULD_FAIL = False'
  ]);
  await kyte.openPanel();
  await expect(kyte.empty).toContainText('No DAG yet', { timeout: 60000 });

  // Define the DAG in a cell: the graph appears.
  await runCell(page, 0);
  const dagOutput = await runCell(page, 1);
  await expect(dagOutput).not.toContainText('Error');
  await expect(kyte.nodes).toHaveCount(4, { timeout: 30000 });
  for (const t of TASKS) {
    await expect(kyte.node(t)).toHaveCount(1);
    await expect(kyte.node(t)).toHaveAttribute('data-state', 'none');
  }
  await expect(kyte.edges).toHaveCount(3);
  await expect(kyte.edge('extract', 'transform.double')).toHaveCount(1);
  await expect(kyte.edge('transform.double', 'transform.check')).toHaveCount(1);
  await expect(kyte.edge('transform.check', 'load')).toHaveCount(1);
  await expect(kyte.groupHeader('transform')).toHaveCount(1);
  await expect(
    kyte.node('extract').locator('.jp-kyte-node-detail')
  ).not.toHaveText('');

  // Run the whole DAG: check fails, load is upstream_failed.
  await runCell(page, 2);
  const final: Record<string, string> = {
    extract: 'success',
    'transform.double': 'success',
    'transform.check': 'failed',
    load: 'upstream_failed'
  };
  for (const [t, state] of Object.entries(final)) {
    await expect(kyte.node(t)).toHaveAttribute('data-state', state, {
      timeout: 30000
    });
    expect(await kyte.colorOf(t)).toBe(STATE_RGB[state]);
  }
  await expect(kyte.panel.locator('.jp-kyte-Panel-run')).toContainText(
    'failed'
  );

  // Click a task: its log opens with the task's own output.
  await kyte.clickNode('extract');
  await expect(kyte.log).toBeVisible();
  await expect(kyte.logText).toContainText('hello from extract', {
    timeout: 30000
  });
  await kyte.clickNode('transform.check');
  await expect(kyte.logText).toContainText('asked to fail', { timeout: 30000 });

  // Fix the cause, then re-run the failed task and its downstream from the context menu:
  // the slow task is seen running, then everything ends green.
  await runCell(page, 3);
  await kyte.contextMenu('transform.check', 'Run with downstream');
  await expect(kyte.node('transform.check')).toHaveAttribute(
    'data-state',
    'running',
    {
      timeout: 30000
    }
  );
  expect(await kyte.colorOf('transform.check')).toBe(STATE_RGB.running);
  await expect(kyte.node('transform.check')).toHaveAttribute(
    'data-state',
    'success',
    {
      timeout: 60000
    }
  );
  await expect(kyte.node('load')).toHaveAttribute('data-state', 'success', {
    timeout: 30000
  });
  expect(await kyte.colorOf('load')).toBe(STATE_RGB.success);
  await expect(
    page.locator('.jp-Notification-Toast-success, .Toastify__toast--success')
  ).not.toHaveCount(0);

  // The log followed the new try: a try selector with both tries.
  await kyte.clickNode('transform.check');
  await expect(kyte.log.locator('.jp-kyte-LogView-try option')).toHaveCount(3, {
    timeout: 30000
  });
  await expect(kyte.logText).toContainText('checking', { timeout: 30000 });

  // Show XCom from the context menu: the value in a dialog.
  await kyte.contextMenu('extract', 'Show XCom');
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('[1, 2, 3]', { timeout: 60000 });
  await dialog.getByRole('button', { name: 'Ok' }).click();
});

test('the export command answers with files or problems', async ({
  page,
  tmpPath
}) => {
  const kyte = new KyteHelper(page);
  await openNotebook(page, tmpPath, 'kyte_export.ipynb', [
    DAG_CELL.replace('if SHOULD_FAIL:', 'if False:')
  ]);
  await runCell(page, 0);
  await kyte.openPanel();
  await expect(kyte.nodes).toHaveCount(4, { timeout: 60000 });
  await page.locator('.jp-NotebookPanel-toolbar .jp-kyte-exportButton').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText(
    /Exported to Airflow DAG|Could not export/,
    {
      timeout: 60000
    }
  );
  await expect(dialog).toContainText(/kyte_ui/);
  await dialog.getByRole('button', { name: 'Ok' }).click();
});
