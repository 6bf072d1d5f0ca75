import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messages, type MessageName } from './gen/messages.js';
import { QUANTITY_FIELDS, REQUIRED_FIELDS } from './schema.js';

test('every required and quantity field names a field of the schema by its JSON name', () => {
  for (const key of [...REQUIRED_FIELDS, ...QUANTITY_FIELDS]) {
    const [message = '', jsonName] = key.split('.');
    const type = messages[message as MessageName];
    assert.ok(type, `${key}: no message ${message}`);
    assert.ok(
      type.fields.some((field) => field.jsonName === jsonName),
      `${key}: ${message} has no field ${jsonName}`,
    );
  }
  for (const key of QUANTITY_FIELDS) {
    const [message = '', jsonName] = key.split('.');
    const field = messages[message as MessageName].fields.find((each) => each.jsonName === jsonName)!;
    assert.equal(field.type, 'string', `${key} holds quantity text`);
  }
});
