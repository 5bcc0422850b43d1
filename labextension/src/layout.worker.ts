/**
 * Web worker running the dagre layout off the main thread, so that laying out a large DAG
 * never freezes JupyterLab.
 */
import { layoutGraph } from './layout';
import { IGraphModel } from './model';

/** What the worker receives. */
export interface ILayoutRequest {
  /** Request number, echoed in the answer. */
  id: number;
  /** The graph to lay out. */
  model: IGraphModel;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ILayoutRequest>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = event => {
  const { id, model } = event.data;
  try {
    scope.postMessage({ id, layout: layoutGraph(model) });
  } catch (error) {
    scope.postMessage({ id, error: String(error) });
  }
};
