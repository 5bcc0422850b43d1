import {
  IBox,
  layoutGraph,
  edgePath,
  nodeWidth,
  NODE_MAX_WIDTH,
  NODE_MIN_WIDTH
} from '../layout';
import { buildGraphModel } from '../graphmodel';
import { etlDag, mkNode, syntheticDag } from './fixtures';

function overlaps(a: IBox, b: IBox): boolean {
  return (
    a.x < b.x + b.width &&
    b.x < a.x + a.width &&
    a.y < b.y + b.height &&
    b.y < a.y + a.height
  );
}

function contains(outer: IBox, inner: IBox): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.width <= outer.x + outer.width &&
    inner.y + inner.height <= outer.y + outer.height
  );
}

describe('layoutGraph', () => {
  it('lays a DAG out left to right', () => {
    const model = buildGraphModel(etlDag, new Set());
    const layout = layoutGraph(model);
    const x = (id: string): number => layout.nodes.get(id)!.x;
    expect(x('g.extract')).toBeLessThan(x('g.transform'));
    expect(x('g.transform')).toBeLessThan(x('load'));
    expect(x('load')).toBeLessThan(x('notify'));
    expect(layout.edges).toHaveLength(4);
    for (const e of layout.edges) {
      expect(e.points.length).toBeGreaterThanOrEqual(2);
      // Edges run from the upstream box to the downstream box.
      const from = layout.nodes.get(e.from)!;
      const to = layout.nodes.get(e.to)!;
      expect(e.points[0].x).toBeCloseTo(from.x + from.width, 0);
      expect(e.points[e.points.length - 1].x).toBeCloseTo(to.x, 0);
    }
  });

  it('draws groups around their members and nowhere else', () => {
    const model = buildGraphModel(etlDag, new Set());
    const layout = layoutGraph(model);
    const g = layout.groups.get('g')!;
    expect(contains(g, layout.nodes.get('g.extract')!)).toBe(true);
    expect(contains(g, layout.nodes.get('g.transform')!)).toBe(true);
    expect(overlaps(g, layout.nodes.get('load')!)).toBe(false);
    expect(overlaps(g, layout.nodes.get('notify')!)).toBe(false);
    expect(layout.width).toBeGreaterThanOrEqual(g.x + g.width);
  });

  it('keeps group boxes and headers off nodes beside the group', () => {
    const node = (task_id: string, task_group: string | null = null) =>
      mkNode({
        task_id,
        label: task_id.split('.').pop()!,
        operator: 'EmptyOperator',
        task_group
      });
    const dag = {
      ...etlDag,
      nodes: [
        node('start'),
        node('side_a'),
        node('g.a', 'g'),
        node('g.b', 'g'),
        node('side_b'),
        node('end')
      ],
      edges: [
        ['start', 'g.a'],
        ['start', 'side_a'],
        ['side_a', 'side_b'],
        ['g.a', 'g.b'],
        ['g.b', 'end'],
        ['side_b', 'end']
      ] as [string, string][],
      task_groups: [{ group_id: 'g', parent: null, label: 'g' }]
    };
    const layout = layoutGraph(buildGraphModel(dag, new Set()));
    const g = layout.groups.get('g')!;
    // At least 4px of air between the group box (with its header) and any other node.
    const grow = (b: IBox, m: number): IBox => ({
      x: b.x - m,
      y: b.y - m,
      width: b.width + 2 * m,
      height: b.height + 2 * m
    });
    for (const id of ['start', 'side_a', 'side_b', 'end']) {
      expect(overlaps(grow(g, 4), layout.nodes.get(id)!)).toBe(false);
    }
  });

  it('never overlaps boxes, also with many groups', () => {
    const model = buildGraphModel(syntheticDag(120, 4, 6), new Set());
    const layout = layoutGraph(model);
    const boxes = [...layout.nodes.values()];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        expect(overlaps(boxes[i], boxes[j])).toBe(false);
      }
    }
    // A group box contains its own tasks and no task of another group.
    for (const node of model.nodes) {
      for (const group of model.groups) {
        const box = layout.nodes.get(node.id)!;
        const gbox = layout.groups.get(group.id)!;
        if (node.parent === group.id) {
          expect(contains(gbox, box)).toBe(true);
        } else {
          expect(overlaps(gbox, box)).toBe(false);
        }
      }
    }
  });

  it('sizes nodes for their text, within bounds', () => {
    const model = buildGraphModel(etlDag, new Set());
    for (const n of model.nodes) {
      expect(nodeWidth(n)).toBeGreaterThanOrEqual(NODE_MIN_WIDTH);
      expect(nodeWidth(n)).toBeLessThanOrEqual(NODE_MAX_WIDTH);
      // Room for the label or the operator (about 7 px a character, 26 px of bar and padding).
      const chars = Math.max(n.label.length, n.detail.length);
      expect(nodeWidth(n)).toBeGreaterThanOrEqual(
        Math.min(NODE_MAX_WIDTH, 26 + 7 * chars)
      );
    }
    expect(
      edgePath([
        { x: 0, y: 0 },
        { x: 10, y: 5 }
      ])
    ).toBe('M0,0L10,5');
    expect(
      edgePath([
        { x: 0, y: 0 },
        { x: 5, y: 5 },
        { x: 10, y: 5 }
      ])
    ).toBe('M0,0Q5,5 10,5');
  });

  it.each([
    [100, 0, false],
    [300, 10, false],
    [1000, 0, false],
    [1000, 10, true]
  ])(
    'lays out %i tasks (groups of %i, collapsed: %s)',
    (n, groupSize, collapse) => {
      const dag = syntheticDag(n, groupSize);
      const collapsed = new Set(
        collapse ? dag.task_groups.map(g => g.group_id!) : []
      );
      const t0 = performance.now();
      const model = buildGraphModel(dag, collapsed);
      const t1 = performance.now();
      const layout = layoutGraph(model);
      const t2 = performance.now();
      expect(layout.nodes.size).toBe(model.nodes.length);
      expect(model.nodes.length).toBe(
        collapse ? 2 + dag.task_groups.length : n
      );
      // eslint-disable-next-line no-console
      console.log(
        `${n} tasks, ${model.nodes.length} drawn nodes, ${model.edges.length} edges, ` +
          `${model.groups.length} expanded groups: ` +
          `model ${(t1 - t0).toFixed(1)} ms, dagre layout ${(t2 - t1).toFixed(1)} ms (Node)`
      );
      // Speed is measured by `python -m benchmarks`, never asserted here (load varies).
    }
  );
});
