/** The shape of one batch operation, checked item by item (batches and imports). */
import { Ajv } from 'ajv';
import Type from 'typebox';
import { ValueInputSchema } from './http-schemas.js';

/** One operation. Checked per item in the handler, so one malformed item fails only itself. */
export function batchItemSchema(maxValues: number) {
  return Type.Object(
    {
      op: Type.Enum(['create', 'upsert', 'update', 'delete']),
      handle: Type.String({ minLength: 1, maxLength: 1024 }),
      values: Type.Optional(Type.Array(ValueInputSchema, { minItems: 1, maxItems: maxValues })),
      version: Type.Optional(Type.Integer({ minimum: 1, description: 'update, delete: the version the record must be at (as If-Match).' })),
    },
    { additionalProperties: false },
  );
}

/** `(operations) => (i) => why item i is malformed, or undefined`. */
export function itemChecker(maxValues: number): (operations: readonly unknown[]) => (i: number) => string | undefined {
  const validateItem = new Ajv({ allErrors: false, strict: false }).compile(batchItemSchema(maxValues) as object);
  return (operations) => (i) => {
    if (validateItem(operations[i])) return undefined;
    const e = validateItem.errors?.[0];
    return e ? `${e.instancePath || 'item'} ${e.message ?? 'is invalid'}`.trim() : 'item is invalid';
  };
}
