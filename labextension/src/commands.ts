/**
 * The Kyte commands: run a task or the DAG in the notebook's kernel, show a task's log or
 * XCom, fit the graph, show the panel. They act on the model (the followed notebook, its
 * session, the shown DAG, the selected or right-clicked task) and never hold data.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { ITranslator, TranslationBundle } from '@jupyterlab/translation';
import { runIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { fitIcon, kyteIcon } from './icons';
import type { IExecutionResult } from './kernel';
import type { LogView } from './logview';
import { describeOutcome } from './runresult';
import { CommandIDs, IKyteModel, IKyteService, ITaskRef } from './tokens';

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

/** What the commands need. */
export interface ICommandsOptions {
  /** The Kyte model. */
  model: IKyteModel;
  /** The REST client (for the log viewer). */
  service: IKyteService;
  /** The translator. */
  translator: ITranslator;
  /** Fit the graph into the panel. */
  fit: () => void;
  /** The id of the sidebar panel (to show it). */
  panelId: string;
  /** The command palette, if any. */
  palette: ICommandPalette | null;
}

/**
 * Add the Kyte commands, their context-menu items and palette entries.
 *
 * @returns A function that opens a task's log (the panel calls it on a click).
 */
export function addCommands(
  app: JupyterFrontEnd,
  options: ICommandsOptions
): (ref: ITaskRef, activate?: boolean) => Promise<void> {
  const { commands, shell } = app;
  const { model, service, translator, palette } = options;
  const trans = translator.load('kyte_jupyter');

  let logWidget: MainAreaWidget<LogView> | null = null;
  const openLog = async (ref: ITaskRef, activate = true): Promise<void> => {
    const session = model.session;
    const dag = model.dags.find(d => d.dag_id === ref.dagId);
    if (!session || !dag) {
      return;
    }
    const node = dag.nodes.find(n => n.task_id === ref.taskId);
    if (!logWidget || logWidget.isDisposed) {
      const { LogView } = await import('./logview');
      const content = new LogView(service, translator);
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
      const where = model.notebook?.id;
      shell.add(
        logWidget,
        'main',
        where ? { ref: where, mode: 'split-bottom' } : { mode: 'split-right' }
      );
    }
    logWidget.content.setTarget({
      sessionId: session.id,
      dagId: ref.dagId,
      taskId: ref.taskId,
      runId: dag.latest_run?.run_id ?? null,
      isMapped: !!node?.is_mapped
    });
    model.selectTask(ref);
    if (activate) {
      shell.activateById(logWidget.id);
    }
  };
  // The log follows the latest run of its DAG.
  model.dagsChanged.connect((_, dags) => {
    const target =
      logWidget && !logWidget.isDisposed ? logWidget.content.target : null;
    const dag = target ? dags.find(d => d.dag_id === target.dagId) : null;
    if (dag) {
      logWidget!.content.setRun(dag.latest_run?.run_id ?? null);
    }
  });

  /** The task a command acts on: its arguments, else the right-clicked or selected task. */
  const taskRef = (args: Record<string, unknown>): ITaskRef | null => {
    if (typeof args.dagId === 'string' && typeof args.taskId === 'string') {
      return { dagId: args.dagId, taskId: args.taskId };
    }
    return model.contextTask ?? model.selectedTask;
  };

  const runInNotebook = async (
    code: string,
    what: string,
    follow: ITaskRef | null
  ): Promise<IExecutionResult | null> => {
    const notebook = model.notebook;
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
    const outcome = describeOutcome(trans, code, result);
    Notification.update({
      id,
      message: outcome.message,
      type: outcome.type,
      autoClose: outcome.type === 'success' ? 6000 : false,
      data: { kind: outcome.kind },
      actions:
        outcome.kind === 'not-run'
          ? []
          : [
              {
                label: trans.__('Show output'),
                caption: trans.__('Show everything the command printed'),
                callback: () => showOutput(trans, code, result)
              }
            ]
    });
    void model.refresh();
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
      isEnabled: args => !!taskRef(args) && !!model.notebook,
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
    isEnabled: args => !!taskRef(args) && !!model.notebook,
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
      if (result && !result.aborted) {
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
    caption: trans.__("Run the whole DAG in the notebook's kernel (%run_dag)"),
    describedBy: {
      args: {
        type: 'object',
        properties: {
          dagId: { type: 'string', description: 'The DAG id (the shown DAG)' }
        }
      }
    },
    icon: runIcon,
    isEnabled: () => !!model.currentDag && !!model.notebook,
    execute: async args => {
      const dagId =
        typeof args.dagId === 'string' ? args.dagId : model.currentDag?.dag_id;
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
    execute: () => options.fit()
  });

  commands.addCommand(CommandIDs.openPanel, {
    label: trans.__('Show Kyte DAG Viewer'),
    describedBy: NO_ARGS,
    icon: kyteIcon,
    execute: () => shell.activateById(options.panelId)
  });

  // Buttons and menus read a command's enabled state only when told it changed: tell them
  // whenever the notebook, its kernel or session, or the shown DAG changes (and now, for the
  // panel's Run DAG button, made before its command existed).
  const modelCommands = [
    CommandIDs.runDag,
    CommandIDs.runTask,
    CommandIDs.runTaskUpstream,
    CommandIDs.runTaskDownstream,
    CommandIDs.showXCom,
    CommandIDs.openLog
  ];
  const notify = (): void => {
    for (const id of modelCommands) {
      commands.notifyCommandChanged(id);
    }
  };
  model.contextChanged.connect(notify);
  notify();

  const selector = '.jp-kyte-node[data-task-id]';
  const menu: [string, number][] = [
    [CommandIDs.runTask, 1],
    [CommandIDs.runTaskUpstream, 2],
    [CommandIDs.runTaskDownstream, 3],
    [CommandIDs.openLog, 5],
    [CommandIDs.showXCom, 6]
  ];
  for (const [command, rank] of menu) {
    app.contextMenu.addItem({ command, selector, rank });
  }
  app.contextMenu.addItem({ type: 'separator', selector, rank: 4 });

  if (palette) {
    const category = trans.__('Kyte');
    palette.addItem({ command: CommandIDs.openPanel, category });
    palette.addItem({ command: CommandIDs.runDag, category });
    palette.addItem({ command: CommandIDs.fitGraph, category });
  }
  return openLog;
}

/** Show what a command printed, its error and its result in a dialog. */
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
  for (const summary of result.summaries) {
    const lines = summary.task_instances.map(
      ti =>
        `${ti.key}: ${ti.state ?? 'no status'}` +
        (ti.error ? ` \u2014 ${ti.error}` : '')
    );
    sections.push([
      trans.__('Run %1: %2', summary.run_id ?? '-', summary.state ?? '-'),
      lines.join('\n')
    ]);
  }
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
