/** Schemas of Handle records on the wire (Handle REST JSON). */
import Type from 'typebox';
import { INPUT_FORMATS } from '../handle/formats.js';

export const ValueInputSchema = Type.Object(
  {
    index: Type.Integer({ minimum: 1, maximum: 2147483647 }),
    type: Type.String({ minLength: 1, maxLength: 255, examples: ['URL'] }),
    data: Type.Object(
      {
        format: Type.Enum(INPUT_FORMATS, { description: 'hex is accepted on input and stored as base64.' }),
        value: Type.Unknown(),
      },
      { additionalProperties: false },
    ),
    ttl: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'Seconds; 0 means never cached.' })),
    permissions: Type.Optional(Type.String({ pattern: '^[01]{4}$', description: 'adminRead adminWrite publicRead publicWrite; default 1110.' })),
    timestamp: Type.Optional(Type.String({ maxLength: 64, description: 'Ignored: the server sets timestamps.' })),
  },
  { additionalProperties: false },
);

export function recordBodySchema(maxValues: number) {
  return Type.Object(
    {
      handle: Type.Optional(Type.String({ maxLength: 1024, description: 'If given, must name the same handle as the URL.' })),
      values: Type.Array(ValueInputSchema, { minItems: 1, maxItems: maxValues }),
    },
    { additionalProperties: false },
  );
}

export const HandleOk = Type.Object({ responseCode: Type.Integer(), handle: Type.String() });
