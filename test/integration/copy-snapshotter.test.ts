import { CopySnapshotter } from '../../node-agent/runtime/snapshots/copy-snapshotter.js';
import { snapshotterConformance } from './snapshotter-conformance.js';

snapshotterConformance('copy', (root) => CopySnapshotter.open(root));
