import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import {
  ITranslator,
  TranslationBundle,
  nullTranslator
} from '@jupyterlab/translation';
import { CommandToolbarButton, runIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { exportIcon, fitIcon, kyteIcon } from './icons';
// The kernel helpers are loaded when a task command first runs.
import type { IExecutionResult } from './kernel';
import type { LogView } from './logview';
// The panel is the sidebar itself: it is created at activation, so it is imported eagerly.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { ITaskRef, KytePanel } from './panel';
import { KyteRequestError } from './request';
import { KyteService } from './service';
import { CommandIDs, IExportProblem, IKyteService } from './tokens';

export { CommandIDs, IKyteService } from './tokens';

/** Arguments of the task commands (the right-clicked or selected task when omitted). */
const TASK_ARGS = {
  args: {
    type: 'object' as const,
    properties: {
      dagId: { type: 'string' as const, description: 'The DAG id' },
      taskId: { type: 'string' as const, description: 'The task id' }
    }
  }
};

/** Commands that take no arguments. */
const NO_ARGS = { args: { type: 'object' as const, properties: {} } };

/**
 * The REST client of the Kyte server extension.
 */
const servicePlugin: JupyterFrontEndPlugin<IKyteService> = {
  id: 'kyte-jupyter:service',
  description: 'Provides the client of the Kyte server extension REST API.',
  autoStart: true,
  provides: IKyteService,
  activate: (app: JupyterFrontEnd): IKyteService =>
    new KyteService(app.serviceManager.serverSettings)
};

/**
 * The sidebar DAG viewer, the task log viewer and the task commands.
 */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:sidebar',
  description:
    'A left-sidebar panel showing the DAGs of the active notebook, their live task states and logs.',
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    const { commands, shell } = app;
    translator = translator ?? nullTranslator;
    const trans = translator.load('kyte_jupyter');
    const panel = new KytePanel({ service, commands, translator });
    shell.add(panel, 'left', { rank: 650, type: 'Kyte' });
    restorer?.add(panel, 'kyte-sidebar');

    panel.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect((_, notebook) =>
      panel.setNotebook(notebook)
    );

    let logWidget: MainAreaWidget<LogView> | null = null;
    const openLog = async (ref: ITaskRef, activate = true): Promise<void> => {
      const session = panel.session;
      const dag = panel.dags.find(d => d.dag_id === ref.dagId);
      if (!session || !dag) {
        return;
      }
      const node = dag.nodes.find(n => n.task_id === ref.taskId);
      if (!logWidget || logWidget.isDisposed) {
        const { LogView } = await import('./logview');
        const content = new LogView(service, translator ?? nullTranslator);
        logWidget = new MainAreaWidget({ content });
        logWidget.id = 'kyte-log';
        logWidget.title.icon = kyteIcon;
        logWidget.title.closable = true;
        content.title.changed.connect(() => {
          if (logWidget) {
            logWidget.title.label = content.title.label;
            logWidget.title.caption = content.title.caption;
          }
        });
        const ref = panel.notebook?.id;
        shell.add(
          logWidget,
          'main',
          ref ? { ref, mode: 'split-bottom' } : { mode: 'split-right' }
        );
      }
      logWidget.content.setTarget({
        sessionId: session.id,
        dagId: ref.dagId,
        taskId: ref.taskId,
        runId: dag.latest_run?.run_id ?? null,
        isMapped: !!node?.is_mapped
      });
      panel.graph.selectedTask = ref.taskId;
      if (activate) {
        shell.activateById(logWidget.id);
      }
    };
    panel.taskActivated.connect((_, ref) => void openLog(ref));
    panel.dagsChanged.connect((_, dags) => {
      const target =
        logWidget && !logWidget.isDisposed ? logWidget.content.target : null;
      if (!target) {
        return;
      }
      const dag = dags.find(d => d.dag_id === target.dagId);
      if (dag) {
        logWidget!.content.setRun(dag.latest_run?.run_id ?? null);
      }
    });

    /** The task a command acts on: its arguments, else the right-clicked or selected task. */
    const taskRef = (args: Record<string, unknown>): ITaskRef | null => {
      if (typeof args.dagId === 'string' && typeof args.taskId === 'string') {
        return { dagId: args.dagId, taskId: args.taskId };
      }
      if (panel.contextTask) {
        return panel.contextTask;
      }
      const dag = panel.currentDag;
      const selected = panel.graph.selectedTask;
      return dag && selected ? { dagId: dag.dag_id, taskId: selected } : null;
    };

    const runInNotebook = async (
      code: string,
      what: string,
      follow: ITaskRef | null
    ): Promise<IExecutionResult | null> => {
      const notebook = panel.notebook;
      if (!notebook?.sessionContext.session?.kernel) {
        Notification.warning(
          trans.__(
            'The notebook has no running kernel: start it (Kernel \u203A Restart Kernel), then try again.'
          ),
          { autoClose: 8000 }
        );
        return null;
      }
      const busy = notebook.sessionContext.kernelDisplayStatus === 'busy';
      const id = Notification.emit(
        `${what}\u2026` +
          (busy
            ? ' ' + trans.__('(waits for the running cell: the kernel is busy)')
            : ''),
        'in-progress',
        { autoClose: false }
      );
      if (follow) {
        void openLog(follow, false);
      }
      let result: IExecutionResult;
      try {
        const { executeInKernel } = await import('./kernel');
        result = await executeInKernel(notebook.sessionContext, code);
      } catch (error) {
        Notification.update({
          id,
          message: trans.__('%1 failed: %2', what, (error as Error).message),
          type: 'error',
          autoClose: false
        });
        return null;
      }
      const summary = result.ok
        ? firstLine(result.result) || trans.__('done')
        : firstLine(result.error) || trans.__('failed');
      Notification.update({
        id,
        message: `${code}: ${summary}`,
        type: result.ok ? 'success' : 'error',
        autoClose: result.ok ? 6000 : false,
        actions: [
          {
            label: trans.__('Show output'),
            caption: trans.__('Show everything the command printed'),
            callback: () => showOutput(trans, code, result)
          }
        ]
      });
      void panel.refresh();
      return result;
    };

    const addRunCommand = (
      id: string,
      label: string,
      direction: 'upstream' | 'downstream' | null
    ): void => {
      commands.addCommand(id, {
        label: args => {
          const ref = taskRef(args);
          return ref && args.dagId ? `${label} (${ref.taskId})` : label;
        },
        caption: trans.__(
          "Run in the notebook's kernel: %1",
          `%run_task DAG TASK${direction ? ` --${direction}` : ''}`
        ),
        describedBy: TASK_ARGS,
        icon: direction ? undefined : runIcon,
        isEnabled: args => !!taskRef(args) && !!panel.notebook,
        execute: async args => {
          const ref = taskRef(args);
          if (!ref) {
            return;
          }
          const { runTaskCode } = await import('./kernel');
          const code = runTaskCode(ref.dagId, ref.taskId, direction);
          await runInNotebook(code, trans.__('Running %1', code), ref);
        }
      });
    };
    addRunCommand(CommandIDs.runTask, trans.__('Run task'), null);
    addRunCommand(
      CommandIDs.runTaskUpstream,
      trans.__('Run with upstream'),
      'upstream'
    );
    addRunCommand(
      CommandIDs.runTaskDownstream,
      trans.__('Run with downstream'),
      'downstream'
    );

    commands.addCommand(CommandIDs.showXCom, {
      label: trans.__('Show XCom'),
      caption: trans.__("Show the task's XCom value (%xcom DAG TASK)"),
      describedBy: TASK_ARGS,
      isEnabled: args => !!taskRef(args) && !!panel.notebook,
      execute: async args => {
        const ref = taskRef(args);
        if (!ref) {
          return;
        }
        const { xcomCode } = await import('./kernel');
        const code = xcomCode(ref.dagId, ref.taskId);
        const result = await runInNotebook(
          code,
          trans.__('Reading %1', code),
          null
        );
        if (result) {
          showOutput(
            trans,
            trans.__('XCom of %1.%2', ref.dagId, ref.taskId),
            result,
            true
          );
        }
      }
    });

    commands.addCommand(CommandIDs.openLog, {
      label: trans.__('Show log'),
      caption: trans.__("Open the task's log"),
      describedBy: TASK_ARGS,
      isEnabled: args => !!taskRef(args),
      execute: args => {
        const ref = taskRef(args);
        if (ref) {
          return openLog(ref);
        }
      }
    });

    commands.addCommand(CommandIDs.runDag, {
      label: args =>
        args.dagId
          ? trans.__('Run DAG %1', String(args.dagId))
          : trans.__('Run DAG'),
      caption: trans.__(
        "Run the whole DAG in the notebook's kernel (%run_dag)"
      ),
      describedBy: {
        args: {
          type: 'object',
          properties: {
            dagId: { type: 'string', description: 'The DAG id (the shown DAG)' }
          }
        }
      },
      icon: runIcon,
      isEnabled: () => !!panel.currentDag && !!panel.notebook,
      execute: async args => {
        const dagId =
          typeof args.dagId === 'string'
            ? args.dagId
            : panel.currentDag?.dag_id;
        if (!dagId) {
          return;
        }
        const { runDagCode } = await import('./kernel');
        const code = runDagCode(dagId);
        await runInNotebook(code, trans.__('Running %1', code), null);
      }
    });

    commands.addCommand(CommandIDs.fitGraph, {
      label: trans.__('Fit DAG Graph'),
      describedBy: NO_ARGS,
      icon: fitIcon,
      execute: () => panel.fit()
    });

    commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Show Kyte DAG Viewer'),
      describedBy: NO_ARGS,
      icon: kyteIcon,
      execute: () => shell.activateById(panel.id)
    });

    // Buttons and menus read a command's enabled state only when told it changed: tell them
    // whenever the notebook, its kernel or session, or the shown DAG changes (and now, for the
    // panel's Run DAG button, made before its command existed).
    const panelCommands = [
      CommandIDs.runDag,
      CommandIDs.runTask,
      CommandIDs.runTaskUpstream,
      CommandIDs.runTaskDownstream,
      CommandIDs.showXCom,
      CommandIDs.openLog
    ];
    const notifyPanelCommands = (): void => {
      for (const id of panelCommands) {
        commands.notifyCommandChanged(id);
      }
    };
    panel.contextChanged.connect(notifyPanelCommands);
    notifyPanelCommands();

    const selector = '.jp-kyte-node[data-task-id]';
    app.contextMenu.addItem({ command: CommandIDs.runTask, selector, rank: 1 });
    app.contextMenu.addItem({
      command: CommandIDs.runTaskUpstream,
      selector,
      rank: 2
    });
    app.contextMenu.addItem({
      command: CommandIDs.runTaskDownstream,
      selector,
      rank: 3
    });
    app.contextMenu.addItem({ type: 'separator', selector, rank: 4 });
    app.contextMenu.addItem({ command: CommandIDs.openLog, selector, rank: 5 });
    app.contextMenu.addItem({
      command: CommandIDs.showXCom,
      selector,
      rank: 6
    });

    if (palette) {
      const category = trans.__('Kyte');
      palette.addItem({ command: CommandIDs.openPanel, category });
      palette.addItem({ command: CommandIDs.runDag, category });
      palette.addItem({ command: CommandIDs.fitGraph, category });
    }
  }
};

/**
 * "Export to Airflow DAG": command palette and notebook toolbar.
 */
const exportPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:export',
  description:
    'Exports the active notebook to Airflow DAG files, from the palette and toolbar.',
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  optional: [ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    const { commands } = app;
    const trans = (translator ?? nullTranslator).load('kyte_jupyter');
    commands.addCommand(CommandIDs.exportDag, {
      label: trans.__('Export to Airflow DAG'),
      // Magics are arguments: the translator reads '%%' in a message as an escaped '%'.
      caption: trans.__(
        'Write one Airflow DAG file per DAG of this notebook (kyte-include cells and %1 cells)',
        '%%dag'
      ),
      icon: exportIcon,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            path: {
              type: 'string',
              description:
                'Notebook path relative to the server root (the active notebook)'
            },
            dagId: { type: 'string', description: 'Export only this DAG' }
          }
        }
      },
      isEnabled: () => !!tracker.currentWidget,
      execute: async args => {
        const notebook =
          (typeof args.path === 'string'
            ? tracker.find(nb => nb.context.localPath === args.path)
            : null) ?? tracker.currentWidget;
        if (!notebook) {
          return;
        }
        await exportNotebook(
          trans,
          service,
          notebook,
          args.dagId as string | undefined
        );
      }
    });
    palette?.addItem({
      command: CommandIDs.exportDag,
      category: trans.__('Kyte')
    });
    // Its enabled state follows the active notebook (the Kyte sidebar's button too, which may
    // have been made before the command existed).
    tracker.currentChanged.connect(() =>
      commands.notifyCommandChanged(CommandIDs.exportDag)
    );
    commands.notifyCommandChanged(CommandIDs.exportDag);

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new CommandToolbarButton({
          commands,
          id: CommandIDs.exportDag,
          label: ''
        });
        button.addClass('jp-kyte-exportButton');
        panel.toolbar.insertItem(10, 'kyteExport', button);
        return button;
      }
    });
  }
};

async function exportNotebook(
  trans: TranslationBundle,
  service: IKyteService,
  notebook: NotebookPanel,
  dagId?: string
): Promise<void> {
  const { context } = notebook;
  if (context.model.dirty && !context.model.readOnly) {
    // Export reads the notebook file: save first so what is exported is what is seen.
    await context.save();
  }
  try {
    const result = await service.exportNotebook(context.localPath, dagId);
    const body = document.createElement('div');
    body.className = 'jp-kyte-ExportDialog';
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
    const ul = document.createElement('ul');
    for (const f of result.files) {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = f;
      li.appendChild(code);
      ul.appendChild(li);
    }
    body.append(p, ul);
    await showDialog({
      title: trans.__('Exported to Airflow DAG'),
      body: new Widget({ node: body }),
      buttons: [Dialog.okButton()]
    });
  } catch (error) {
    const body = document.createElement('div');
    body.className = 'jp-kyte-ExportDialog jp-mod-error';
    const p = document.createElement('p');
    p.textContent = (error as Error).message;
    body.appendChild(p);
    const problems = error instanceof KyteRequestError ? error.problems : [];
    if (problems.length) {
      const ul = document.createElement('ul');
      for (const problem of problems) {
        const li = document.createElement('li');
        li.textContent = describeProblem(trans, problem);
        ul.appendChild(li);
      }
      body.appendChild(ul);
    }
    await showDialog({
      title: trans.__('Could not export to an Airflow DAG'),
      body: new Widget({ node: body }),
      buttons: [Dialog.okButton()]
    });
  }
}

/** One export problem as a sentence. */
export function describeProblem(
  trans: TranslationBundle,
  problem: unknown
): string {
  if (typeof problem === 'string') {
    return problem;
  }
  if (problem && typeof problem === 'object') {
    const p = problem as IExportProblem;
    const where = [
      p.cell !== undefined ? trans.__('cell %1', String(p.cell)) : '',
      p.line !== undefined ? trans.__('line %1', p.line) : ''
    ]
      .filter(Boolean)
      .join(', ');
    const message =
      typeof p.message === 'string' ? p.message : JSON.stringify(problem);
    return where ? `${where}: ${message}` : message;
  }
  return String(problem);
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 200 ? line.slice(0, 199) + '\u2026' : line;
}

function showOutput(
  trans: TranslationBundle,
  title: string,
  result: IExecutionResult,
  valueFirst = false
): void {
  const body = document.createElement('div');
  body.className = 'jp-kyte-OutputDialog';
  const sections: [string, string][] = valueFirst
    ? [
        [trans.__('Value'), result.result],
        [trans.__('Error'), result.error],
        [trans.__('Output'), result.output]
      ]
    : [
        [trans.__('Output'), result.output],
        [trans.__('Error'), result.error],
        [trans.__('Result'), result.result]
      ];
  for (const [name, text] of sections) {
    if (!text) {
      continue;
    }
    const h = document.createElement('h4');
    h.textContent = name;
    const pre = document.createElement('pre');
    pre.textContent = text;
    body.append(h, pre);
  }
  if (!body.childElementCount) {
    body.textContent = trans.__('Nothing was printed.');
  }
  void showDialog({
    title,
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton()]
  });
}

export default [servicePlugin, sidebarPlugin, exportPlugin];
