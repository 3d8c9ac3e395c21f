// The OpenAPI document itself: the committed packages/relay/openapi.json is the generated one
// (`npm run schema` after a change), and the document holds together (every $ref resolves,
// every operation is guarded by the bearer scheme and documents its 401). The calls of a
// running relay against it are test/openapi.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ADMIN_OPERATIONS, adminOpenApi, adminOpenApiText } from './openapi.js';
import { relayJsonSchema } from './schema.js';

const doc = adminOpenApi();

function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) refs(item, out);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') out.push(item);
      else refs(item, out);
    }
  }
  return out;
}

describe('the OpenAPI document', () => {
  it('is committed as packages/relay/openapi.json byte for byte (run `npm run schema`)', () => {
    const committed = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
    assert.equal(committed, adminOpenApiText(), 'openapi.json is stale: run `npm run schema`');
  });

  it('is OpenAPI 3.1 with the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.equal(doc.openapi, '3.1.0');
    assert.equal((doc.info as { version: string }).version, pkg.version);
  });

  it('every $ref points at a schema it has', () => {
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas;
    const all = refs(doc);
    assert.ok(all.length > 20, 'the answers refer to named schemas');
    for (const ref of all) {
      const match = /^#\/components\/schemas\/(\w+)$/.exec(ref);
      assert.ok(match, `${ref} is a component ref`);
      assert.ok(schemas[match[1]!], `${ref} is defined`);
    }
  });

  it('every operation is behind the bearer scheme, documents 401 and has a unique id', () => {
    const schemes = (doc.components as { securitySchemes: Record<string, unknown> })
      .securitySchemes;
    assert.deepEqual(schemes.bearer, {
      type: 'http',
      scheme: 'bearer',
      description: 'admin.token, else the http source token.',
    });
    assert.deepEqual(doc.security, [{ bearer: [] }, {}]);
    const ids = new Set<string>();
    for (const op of ADMIN_OPERATIONS) {
      assert.ok(op.responses[401], `${op.method} ${op.path} documents 401`);
      assert.ok(!ids.has(op.operationId), `${op.operationId} is used once`);
      ids.add(op.operationId);
      const documented = doc.paths[op.path]?.[op.method] as
        { parameters?: { name: string; in: string }[] } | undefined;
      assert.ok(documented, `${op.method} ${op.path} is in paths`);
      for (const [, name] of op.path.matchAll(/\{(\w+)\}/g)) {
        assert.ok(
          documented.parameters?.some((p) => p.in === 'path' && p.name === name),
          `${op.path} declares {${name}}`,
        );
      }
    }
  });

  it('the create and replace body is the configuration file destination schema', () => {
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas;
    const file = relayJsonSchema() as {
      properties: { destinations: { items: unknown } };
    };
    assert.deepEqual(schemas.DestinationInput, {
      ...(file.properties.destinations.items as object),
      description: 'A destination exactly as in the configuration file (the same validation).',
    });
  });
});
