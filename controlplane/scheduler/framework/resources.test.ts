import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePod } from '../testing.js';
import {
  DEFAULT_MEMORY_REQUEST,
  DEFAULT_MILLI_CPU_REQUEST,
  parseResourceList,
  podRequests,
} from './resources.js';

describe('resources', () => {
  test('quantities read as millicores, bytes, counts; other names as whole units', () => {
    const list = parseResourceList({
      cpu: '1500m',
      memory: '1Gi',
      pods: '110',
      'ephemeral-storage': '1G',
      'example.com/gpu': '2',
    });
    assert.equal(list.milliCpu, 1500);
    assert.equal(list.memory, 1024 ** 3);
    assert.equal(list.pods, 110);
    assert.equal(list.ephemeralStorage, 1e9);
    assert.equal(list.scalar?.get('example.com/gpu'), 2);
  });

  test('pod-level requests stand for the containers cpu and memory', () => {
    const pod = makePod('p', { cpu: '100m', memory: '1Mi' });
    pod.spec.resources = { requests: { cpu: '2' } };
    const requests = podRequests(pod.spec);
    assert.equal(requests.milliCpu, 2000);
    assert.equal(requests.memory, 1024 * 1024);
  });

  test('for scoring, a container naming no cpu or memory request counts the defaults', () => {
    const scoring = podRequests(makePod('p').spec, true);
    assert.equal(scoring.milliCpu, DEFAULT_MILLI_CPU_REQUEST);
    assert.equal(scoring.memory, DEFAULT_MEMORY_REQUEST);
    assert.equal(podRequests(makePod('p').spec).milliCpu, 0);
  });
});
