/**
 * The zoom and pan a drawn graph is shown with: fit, and the view a new graph opens with.
 * Pure (no DOM), unit-tested.
 */
import { IBox, IGraphLayout } from './layout';

/** The smallest zoom factor. */
export const MIN_SCALE = 0.02;
/**
 * A new graph opens fitted into the view when that zoom keeps its labels readable (a small
 * DAG in a narrow sidebar)...
 */
export const FIT_MIN_SCALE = 0.6;
/** ...and otherwise at this zoom, showing the DAG's start (its left end). */
export const READABLE_SCALE = 0.75;
/** Room left around a fitted drawing, in pixels of the view. */
export const FIT_PADDING = 8;

/** A zoom factor and the translation applied after it. */
export interface IViewTransform {
  /** Zoom factor. */
  k: number;
  /** Horizontal translation, in view pixels. */
  tx: number;
  /** Vertical translation, in view pixels. */
  ty: number;
}

/**
 * The box around what a layout draws (its boxes, group boxes and edges), without the
 * layout's outer margins; null when it draws nothing.
 */
export function drawingBounds(layout: IGraphLayout): IBox | null {
  let x0 = Number.POSITIVE_INFINITY;
  let y0 = Number.POSITIVE_INFINITY;
  let x1 = Number.NEGATIVE_INFINITY;
  let y1 = Number.NEGATIVE_INFINITY;
  const add = (x: number, y: number, w = 0, h = 0): void => {
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x + w);
    y1 = Math.max(y1, y + h);
  };
  for (const b of layout.nodes.values()) {
    add(b.x, b.y, b.width, b.height);
  }
  for (const b of layout.groups.values()) {
    add(b.x, b.y, b.width, b.height);
  }
  for (const e of layout.edges) {
    for (const p of e.points) {
      add(p.x, p.y);
    }
  }
  if (!Number.isFinite(x0) || x1 <= x0 || y1 <= y0) {
    return null;
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

/** The zoom at which a drawing fits a view of `width` x `height`, never above 100%. */
export function fitScale(bounds: IBox, width: number, height: number): number {
  return Math.max(
    MIN_SCALE,
    Math.min(
      1,
      (width - 2 * FIT_PADDING) / bounds.width,
      (height - 2 * FIT_PADDING) / bounds.height
    )
  );
}

/** The whole drawing in the view, centred. */
export function fitView(
  bounds: IBox,
  width: number,
  height: number
): IViewTransform {
  const k = fitScale(bounds, width, height);
  return {
    k,
    tx: (width - bounds.width * k) / 2 - bounds.x * k,
    ty: Math.max(FIT_PADDING, (height - bounds.height * k) / 2) - bounds.y * k
  };
}

/**
 * The view a newly drawn graph opens with: fitted when that keeps the labels readable (zoom
 * at least FIT_MIN_SCALE), otherwise at READABLE_SCALE showing the DAG's start (its left end,
 * or its top when it flows top to bottom), centred across.
 */
export function initialView(
  layout: IGraphLayout,
  bounds: IBox,
  width: number,
  height: number
): IViewTransform & { fitted: boolean } {
  if (fitScale(bounds, width, height) >= FIT_MIN_SCALE) {
    return { ...fitView(bounds, width, height), fitted: true };
  }
  const k = READABLE_SCALE;
  if (layout.direction === 'TB') {
    return {
      k,
      tx: layout.width * k < width ? (width - layout.width * k) / 2 : 8,
      ty: 8,
      fitted: false
    };
  }
  return {
    k,
    tx: 8,
    ty: layout.height * k < height ? (height - layout.height * k) / 2 : 8,
    fitted: false
  };
}
