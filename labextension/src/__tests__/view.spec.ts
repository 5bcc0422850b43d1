import { IGraphLayout, layoutGraph } from '../layout';
import { buildGraphModel } from '../graphmodel';
import {
  FIT_MIN_SCALE,
  FIT_PADDING,
  READABLE_SCALE,
  drawingBounds,
  fitView,
  initialView
} from '../view';
import { etlDag, mkDag, mkNode, syntheticDag, tourDag } from './fixtures';
import { IDagInfo } from '../tokens';

/** The sidebar's graph area at JupyterLab's default sidebar width (250 px). */
const SIDEBAR = { width: 250, height: 570 };

function laidOut(dag: IDagInfo): IGraphLayout {
  return layoutGraph(buildGraphModel(dag, new Set()));
}

/** Where the drawing lands in the view under a transform. */
function onScreen(
  layout: IGraphLayout,
  view: { k: number; tx: number; ty: number }
): { left: number; top: number; right: number; bottom: number } {
  const b = drawingBounds(layout)!;
  return {
    left: view.tx + b.x * view.k,
    top: view.ty + b.y * view.k,
    right: view.tx + (b.x + b.width) * view.k,
    bottom: view.ty + (b.y + b.height) * view.k
  };
}

describe('the view of a graph', () => {
  it('bounds the drawing without the layout margins', () => {
    const layout = laidOut(tourDag);
    const b = drawingBounds(layout)!;
    const boxes = [...layout.nodes.values()];
    expect(b.x).toBe(Math.min(...boxes.map(n => n.x)));
    expect(b.x + b.width).toBe(Math.max(...boxes.map(n => n.x + n.width)));
    expect(b.width).toBeLessThan(layout.width);
    expect(
      drawingBounds({ ...layout, nodes: new Map(), edges: [] })
    ).toBeNull();
  });

  it('fits the tour DAG into the default sidebar, readable, on first show', () => {
    const layout = laidOut(tourDag);
    const view = initialView(
      layout,
      drawingBounds(layout)!,
      SIDEBAR.width,
      SIDEBAR.height
    );
    expect(view.fitted).toBe(true);
    expect(view.k).toBeGreaterThanOrEqual(FIT_MIN_SCALE);
    const s = onScreen(layout, view);
    expect(s.left).toBeGreaterThanOrEqual(FIT_PADDING - 0.01);
    expect(s.right).toBeLessThanOrEqual(SIDEBAR.width - FIT_PADDING + 0.01);
    expect(s.top).toBeGreaterThanOrEqual(FIT_PADDING - 0.01);
    expect(s.bottom).toBeLessThanOrEqual(SIDEBAR.height - FIT_PADDING + 0.01);
    // Centred.
    expect(s.left).toBeCloseTo(SIDEBAR.width - s.right, 5);
    expect(s.top).toBeCloseTo(SIDEBAR.height - s.bottom, 5);
  });

  it('never zooms a small graph in beyond 100%', () => {
    const layout = laidOut(tourDag);
    const view = initialView(layout, drawingBounds(layout)!, 1200, 800);
    expect(view.fitted).toBe(true);
    expect(view.k).toBe(1);
  });

  it('opens a graph too large to fit readably at a readable zoom, at its start', () => {
    for (const dag of [etlDag, syntheticDag(100)]) {
      const layout = laidOut(dag);
      const bounds = drawingBounds(layout)!;
      expect(fitView(bounds, SIDEBAR.width, SIDEBAR.height).k).toBeLessThan(
        FIT_MIN_SCALE
      );
      const view = initialView(layout, bounds, SIDEBAR.width, SIDEBAR.height);
      expect(view.fitted).toBe(false);
      expect(view.k).toBe(READABLE_SCALE);
      expect(onScreen(layout, view).left).toBeGreaterThanOrEqual(0);
      expect(onScreen(layout, view).left).toBeLessThan(40);
    }
  });

  it('fits any graph entirely when asked, however small the zoom', () => {
    const layout = laidOut(syntheticDag(1000));
    const view = fitView(drawingBounds(layout)!, 250, 570);
    const s = onScreen(layout, view);
    expect(s.left).toBeGreaterThanOrEqual(0);
    expect(s.right).toBeLessThanOrEqual(250);
    expect(s.top).toBeGreaterThanOrEqual(0);
    expect(s.bottom).toBeLessThanOrEqual(570);
  });

  it('shows a 12-task DAG readable across a narrow panel, top to bottom (12.4)', () => {
    const nodes = Array.from({ length: 12 }, (_, i) =>
      mkNode({ task_id: `step_${i}_transform` })
    );
    const dag: IDagInfo = mkDag({
      dag_id: 'twelve',
      nodes,
      edges: nodes.slice(1).map((n, i) => [nodes[i].task_id, n.task_id])
    });
    const model = buildGraphModel(dag, new Set());
    // Left to right, the whole DAG fits a default-width sidebar only at an unreadable zoom.
    const lr = layoutGraph(model, 'LR');
    expect(
      fitView(drawingBounds(lr)!, SIDEBAR.width, SIDEBAR.height).k
    ).toBeLessThan(0.35);
    // Top to bottom, it opens at a readable zoom, its whole width in view, from its start.
    const tb = layoutGraph(model, 'TB');
    expect(tb.direction).toBe('TB');
    const view = initialView(
      tb,
      drawingBounds(tb)!,
      SIDEBAR.width,
      SIDEBAR.height
    );
    expect(view.k).toBeGreaterThanOrEqual(FIT_MIN_SCALE);
    const s = onScreen(tb, view);
    expect(s.left).toBeGreaterThanOrEqual(0);
    expect(s.right).toBeLessThanOrEqual(SIDEBAR.width);
    expect(s.top).toBeGreaterThanOrEqual(0);
    expect(s.top).toBeLessThan(40);
  });
});
