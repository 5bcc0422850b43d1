import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import {
  CommandToolbarButton,
  LabIcon,
  launchIcon
} from '@jupyterlab/ui-components';
import type {
  ReadonlyJSONObject,
  ReadonlyPartialJSONObject
} from '@lumino/coreutils';

// The panel, the model and the commands make the sidebar at activation: imported eagerly.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { addCommands } from './commands';
import { exportIcon } from './icons';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KyteModel } from './model';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KytePanel } from './panel';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { KyteService } from './service';
import { CommandIDs, IKyteModel, IKyteService } from './tokens';

export { CommandIDs, IKyteModel, IKyteService } from './tokens';

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
 * The Kyte model: follows the active notebook, polls its session's DAGs.
 */
const modelPlugin: JupyterFrontEndPlugin<IKyteModel> = {
  id: 'kyte-jupyter:model',
  description:
    "Provides the Kyte model: the active notebook's session, its DAGs (polled) and the selection.",
  autoStart: true,
  requires: [IKyteService, INotebookTracker],
  provides: IKyteModel,
  activate: (
    app: JupyterFrontEnd,
    service: IKyteService,
    tracker: INotebookTracker
  ): IKyteModel => {
    // Poll only while something shows the DAGs: the sidebar or a task log.
    const shown = (id: string): boolean =>
      !!document.getElementById(id)?.checkVisibility?.();
    const model = new KyteModel({
      service,
      standby: () => !shown('kyte-sidebar') && !shown('kyte-log')
    });
    model.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect((_, notebook) =>
      model.setNotebook(notebook)
    );
    return model;
  }
};

/**
 * The sidebar DAG viewer, the task log viewer and the task commands.
 */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:sidebar',
  description:
    'A left-sidebar panel showing the DAGs of the active notebook, their live task states and logs.',
  autoStart: true,
  requires: [IKyteModel, IKyteService],
  optional: [ILayoutRestorer, ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: IKyteModel,
    service: IKyteService,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ): void => {
    translator = translator ?? nullTranslator;
    const panel = new KytePanel({
      model,
      commands: app.commands,
      translator,
      service
    });
    app.shell.add(panel, 'left', { rank: 650, type: 'Kyte' });
    restorer?.add(panel, 'kyte-sidebar');
    const openLog = addCommands(app, {
      model,
      service,
      translator,
      palette,
      fit: () => panel.fit(),
      panelId: panel.id
    });
    panel.taskActivated.connect((_, ref) => void openLog(ref));
  }
};

/**
 * What a notebook command of the palette and the notebook toolbar does.
 */
interface INotebookCommand {
  /** The command id. */
  id: string;
  /** The label (palette, menus). */
  label: string;
  /** The caption (tooltip). */
  caption: string;
  /** The icon (toolbar). */
  icon: LabIcon;
  /** The description of the `dagId` argument. */
  dagIdHelp: string;
  /** Extra arguments of the command, as JSON Schema properties. */
  extraArgs?: Record<string, ReadonlyJSONObject>;
  /** Where the toolbar button goes (its rank), its name and CSS class. */
  toolbar: { rank: number; name: string; className: string };
  /** Run the command on a notebook (the `path` argument's, else the active one). */
  run: (
    notebook: NotebookPanel,
    dagId: string | undefined,
    args: ReadonlyPartialJSONObject
  ) => Promise<void>;
}

/**
 * Add a command acting on a notebook (`path` argument, else the active notebook) to the
 * palette and to every notebook's toolbar; its enabled state follows the active notebook.
 */
function addNotebookCommand(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null,
  category: string,
  command: INotebookCommand
): void {
  const { commands } = app;
  commands.addCommand(command.id, {
    label: command.label,
    caption: command.caption,
    icon: command.icon,
    describedBy: {
      args: {
        type: 'object',
        properties: {
          path: {
            type: 'string',
            description:
              'Notebook path relative to the server root (the active notebook)'
          },
          dagId: { type: 'string', description: command.dagIdHelp },
          ...command.extraArgs
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
      await command.run(notebook, args.dagId as string | undefined, args);
    }
  });
  palette?.addItem({ command: command.id, category });
  // Its enabled state follows the active notebook (the Kyte sidebar's button too, which may
  // have been made before the command existed).
  tracker.currentChanged.connect(() =>
    commands.notifyCommandChanged(command.id)
  );
  commands.notifyCommandChanged(command.id);
  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (panel: NotebookPanel) => {
      const button = new CommandToolbarButton({
        commands,
        id: command.id,
        label: ''
      });
      button.addClass(command.toolbar.className);
      panel.toolbar.insertItem(
        command.toolbar.rank,
        command.toolbar.name,
        button
      );
      return button;
    }
  });
}

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
    const trans = (translator ?? nullTranslator).load('kyte_jupyter');
    addNotebookCommand(app, tracker, palette, trans.__('Kyte'), {
      id: CommandIDs.exportDag,
      label: trans.__('Export to Airflow DAG'),
      // Magics are arguments: the translator reads '%%' in a message as an escaped '%'.
      caption: trans.__(
        'Write one Airflow DAG file per DAG of this notebook (kyte-include cells and %1 cells)',
        '%%dag'
      ),
      icon: exportIcon,
      dagIdHelp: 'Export only this DAG',
      extraArgs: {
        tests: {
          type: 'boolean',
          description:
            "Also write the %%scenario cells' tests (test_<dag_id>.py); asked when omitted"
        }
      },
      toolbar: {
        rank: 10,
        name: 'kyteExport',
        className: 'jp-kyte-exportButton'
      },
      run: async (notebook, dagId, args) => {
        const { exportNotebook } = await import('./exportdialog');
        await exportNotebook(
          trans,
          service,
          notebook,
          dagId,
          typeof args.tests === 'boolean' ? { tests: args.tests } : undefined
        );
      }
    });
  }
};

/**
 * "Publish…": review, then publish the notebook's DAG files to a configured target.
 */
const publishPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:publish',
  description:
    "Publishes the active notebook's DAG files to a folder or git branch after a review, from the palette and toolbar.",
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
    const trans = (translator ?? nullTranslator).load('kyte_jupyter');
    addNotebookCommand(app, tracker, palette, trans.__('Kyte'), {
      id: CommandIDs.publish,
      label: trans.__('Publish\u2026'),
      caption: trans.__(
        'Review, then publish the DAG files of this notebook to a folder or git branch'
      ),
      icon: launchIcon,
      dagIdHelp: 'Publish only this DAG',
      toolbar: {
        rank: 11,
        name: 'kytePublish',
        className: 'jp-kyte-publishButton'
      },
      run: async (notebook, dagId) => {
        const { publishNotebook } = await import('./publish');
        await publishNotebook(trans, service, notebook, dagId);
      }
    });
  }
};

/**
 * Tells each notebook's kernel which `%%dag` cells the notebook holds (comm `kyte.notebook`).
 */
const notebookCommPlugin: JupyterFrontEndPlugin<void> = {
  id: 'kyte-jupyter:notebook-comm',
  description:
    "Keeps each notebook's kernel told of the notebook's %%dag cells, so deleted cells' DAGs go.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IKyteModel],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    model: IKyteModel | null
  ): void => {
    tracker.widgetAdded.connect(async (_, panel) => {
      const { NotebookCellSync } = await import('./notebookcomm');
      const sync = new NotebookCellSync(panel, messages => {
        Notification.info(messages.join('\n'), { autoClose: 10000 });
        void model?.refresh();
      });
      panel.disposed.connect(() => sync.dispose());
    });
  }
};

export default [
  servicePlugin,
  modelPlugin,
  sidebarPlugin,
  exportPlugin,
  publishPlugin,
  notebookCommPlugin
];
