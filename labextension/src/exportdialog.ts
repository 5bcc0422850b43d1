/**
 * "Export to Airflow DAG": save, POST kyte/export, and tell what was written or what stopped
 * it, each problem once, with a link that scrolls to and selects the cell concerned.
 */
import { Dialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { errorHeadline, uniqueProblems } from './exportproblems';
import { KyteRequestError } from './request';
import { IExportOptions, IKyteService } from './tokens';

/** Scroll a notebook to a cell (numbered from 1) and select it. */
export function revealCell(notebook: NotebookPanel, cellNumber: number): void {
  const content = notebook.content;
  const index = cellNumber - 1;
  if (index < 0 || index >= content.widgets.length) {
    return;
  }
  content.deselectAll();
  content.activeCellIndex = index;
  content.mode = 'command';
  void content.scrollToItem(index, 'center');
  content.activate();
}

/** A list of file paths, as code. */
function fileList(files: readonly string[]): HTMLUListElement {
  const ul = document.createElement('ul');
  for (const f of files) {
    const li = document.createElement('li');
    const code = document.createElement('code');
    code.textContent = f;
    li.appendChild(code);
    ul.appendChild(li);
  }
  return ul;
}

/** Whether a notebook has `%%scenario` cells (what `--tests` turns into pytest files). */
export function hasScenarios(notebook: NotebookPanel): boolean {
  const cells = notebook.model?.sharedModel.cells ?? [];
  return cells.some(
    cell =>
      cell.cell_type === 'code' &&
      cell.getSource().trimStart().startsWith('%%scenario')
  );
}

/**
 * Ask how to export a notebook that has scenarios: with their tests (`test_<dag_id>.py` next
 * to each DAG file, as `jupyter kyte export --tests`) or without. Null when cancelled.
 */
export async function askExportOptions(
  trans: TranslationBundle
): Promise<IExportOptions | null> {
  const body = document.createElement('div');
  body.className = 'jp-kyte-ExportOptions';
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.checked = true;
  box.className = 'jp-kyte-ExportOptions-tests';
  label.append(
    box,
    document.createTextNode(
      ' ' +
        trans.__(
          "Also write the scenarios' tests (test_<dag_id>.py next to each DAG file: plain pytest and Airflow, from the %1 cells)",
          '%%scenario'
        )
    )
  );
  body.appendChild(label);
  const result = await new Dialog({
    title: trans.__('Export to Airflow DAG'),
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: trans.__('Export') })
    ]
  }).launch();
  return result.button.accept ? { tests: box.checked } : null;
}

/**
 * Export a notebook and show the result in a dialog. A notebook with `%%scenario` cells is
 * asked first whether to write their tests too, unless `options.tests` says.
 */
export async function exportNotebook(
  trans: TranslationBundle,
  service: IKyteService,
  notebook: NotebookPanel,
  dagId?: string,
  options?: IExportOptions
): Promise<void> {
  if (options?.tests === undefined && hasScenarios(notebook)) {
    const asked = await askExportOptions(trans);
    if (!asked) {
      return;
    }
    options = { ...options, ...asked };
  }
  const { context } = notebook;
  if (context.model.dirty && !context.model.readOnly) {
    // Export reads the notebook file: save first so what is exported is what is seen.
    await context.save();
  }
  const body = document.createElement('div');
  body.className = 'jp-kyte-ExportDialog';
  let title: string;
  const links: HTMLElement[] = [];
  try {
    const result = await service.exportNotebook(
      context.localPath,
      dagId,
      options
    );
    title = trans.__('Exported to Airflow DAG');
    const p = document.createElement('p');
    p.textContent = result.files.length
      ? trans._n(
          'Wrote %1 DAG file:',
          'Wrote %1 DAG files:',
          result.files.length
        )
      : trans.__(
          'The notebook has no %1 cell, so no DAG file was written.',
          '%%dag'
        );
    body.append(p, fileList(result.files));
    if (options?.tests) {
      const tests = document.createElement('p');
      tests.className = 'jp-kyte-ExportDialog-tests';
      const written = result.tests ?? [];
      tests.textContent = written.length
        ? trans._n(
            'and %1 scenario test file (run it with pytest):',
            'and %1 scenario test files (run them with pytest):',
            written.length
          )
        : trans.__(
            'No DAG written has a scenario, so no test file was written.'
          );
      body.appendChild(tests);
      if (written.length) {
        body.appendChild(fileList(written));
      }
    }
  } catch (error) {
    title = trans.__('Could not export to an Airflow DAG');
    body.classList.add('jp-mod-error');
    const problems = uniqueProblems(
      error instanceof KyteRequestError ? error.problems : []
    );
    const p = document.createElement('p');
    p.textContent = errorHeadline(
      (error as Error).message,
      problems.length > 0
    );
    body.appendChild(p);
    if (problems.length) {
      const ul = document.createElement('ul');
      ul.className = 'jp-kyte-ExportDialog-problems';
      for (const problem of problems) {
        const li = document.createElement('li');
        if (problem.cell !== undefined) {
          const a = document.createElement('a');
          a.href = '#';
          a.className = 'jp-kyte-ExportDialog-cell';
          a.dataset.cell = String(problem.cell);
          a.textContent =
            problem.line !== undefined
              ? trans.__('Cell %1, line %2', problem.cell, problem.line)
              : trans.__('Cell %1', problem.cell);
          a.title = trans.__('Show the cell in the notebook');
          links.push(a);
          li.append(a, document.createTextNode(': '));
        }
        li.append(document.createTextNode(problem.message));
        ul.appendChild(li);
      }
      body.appendChild(ul);
    }
  }
  const dialog = new Dialog({
    title,
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton()]
  });
  for (const a of links) {
    a.addEventListener('click', event => {
      event.preventDefault();
      dialog.resolve(0);
      revealCell(notebook, Number(a.dataset.cell));
    });
  }
  await dialog.launch();
}
