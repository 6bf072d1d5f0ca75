import { CopySnapshotter } from './copy-snapshotter.js';
import { snapshotterConformance } from './snapshotter-conformance.js';

snapshotterConformance('copy', (root) => CopySnapshotter.open(root));
