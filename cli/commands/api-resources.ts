/** `skiff api-resources`: the kinds the API serves, as kubectl lists them. */
import type { Command } from 'commander';
import { KINDS } from '../../proto/kinds.js';
import { renderTable } from '../output/table.js';
import { out } from './context.js';

export function apiResourcesTable(): string {
  return renderTable(
    ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND'],
    KINDS.map((k) => [k.plural, k.shortNames.join(','), k.apiVersion, String(k.namespaced), k.kind]),
  );
}

export function registerApiResources(program: Command): void {
  program
    .command('api-resources')
    .description('list the kinds the API serves, with their short names')
    .action(() => out(apiResourcesTable()));
}
