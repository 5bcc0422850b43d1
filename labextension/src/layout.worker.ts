/**
 * Web worker running the dagre layout off the main thread, so that laying out a large DAG
 * never freezes JupyterLab.
 */
import { LayoutDirection, layoutGraph } from './layout';
import { IGraphModel } from './graphmodel';

/** What the worker receives. */
export interface ILayoutRequest {
  /** Request number, echoed in the answer. */
  id: number;
  /** The graph to lay out. */
  model: IGraphModel;
  /** Which way the graph flows. */
  direction: LayoutDirection;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ILayoutRequest>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = event => {
  const { id, model, direction } = event.data;
  try {
    scope.postMessage({ id, layout: layoutGraph(model, direction) });
  } catch (error) {
    scope.postMessage({ id, error: String(error) });
  }
};
