import { LabIcon } from '@jupyterlab/ui-components';

import kyteSvg from '../style/icons/kyte.svg';
import fitSvg from '../style/icons/fit.svg';
import zoomInSvg from '../style/icons/zoom-in.svg';
import zoomOutSvg from '../style/icons/zoom-out.svg';
import exportSvg from '../style/icons/export.svg';

/** The Kyte sidebar icon. */
export const kyteIcon = new LabIcon({
  name: 'kyte-jupyter:kyte',
  svgstr: kyteSvg
});
/** Fit the graph into view. */
export const fitIcon = new LabIcon({
  name: 'kyte-jupyter:fit',
  svgstr: fitSvg
});
/** Zoom in. */
export const zoomInIcon = new LabIcon({
  name: 'kyte-jupyter:zoom-in',
  svgstr: zoomInSvg
});
/** Zoom out. */
export const zoomOutIcon = new LabIcon({
  name: 'kyte-jupyter:zoom-out',
  svgstr: zoomOutSvg
});
/** Export to an Airflow DAG file. */
export const exportIcon = new LabIcon({
  name: 'kyte-jupyter:export',
  svgstr: exportSvg
});
