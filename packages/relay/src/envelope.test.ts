// The eventTypes predicate: `*` wildcards, literal dots, the configurable type field, and
// events without a string type.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeEventTypePredicate, type Envelope } from './envelope.js';

const of = (event: Record<string, unknown>): Envelope => ({
  id: '1',
  receivedAt: 0,
  source: 'http',
  event,
});

describe('makeEventTypePredicate', () => {
  it('is undefined without patterns', () => {
    assert.equal(makeEventTypePredicate(undefined, 'type'), undefined);
    assert.equal(makeEventTypePredicate([], 'type'), undefined);
  });

  it('matches * as any run of characters and everything else literally', () => {
    const takes = makeEventTypePredicate(['order.*', 'invoice.paid'], 'type')!;
    for (const type of ['order.created', 'order.item.added', 'order.', 'invoice.paid']) {
      assert.equal(takes(of({ type })), true, type);
    }
    for (const type of [
      'order',
      'orderXcreated',
      'invoice.paid.late',
      'xinvoice.paid',
      'invoiceXpaid',
    ]) {
      assert.equal(takes(of({ type })), false, type);
    }
    const middle = makeEventTypePredicate(['a*z', '(x)+'], 'type')!;
    assert.equal(middle(of({ type: 'abcz' })), true);
    assert.equal(middle(of({ type: 'az' })), true);
    assert.equal(middle(of({ type: 'abc' })), false);
    assert.equal(middle(of({ type: '(x)+' })), true, 'regex characters are literal');
    assert.equal(middle(of({ type: 'xx' })), false);
  });

  it('* alone takes every event that has a string type, on the configured field', () => {
    const any = makeEventTypePredicate(['*'], 'meta.kind')!;
    assert.equal(any(of({ meta: { kind: 'anything' } })), true);
    assert.equal(any(of({ meta: { kind: '' } })), true);
    assert.equal(any(of({ type: 'order.created' })), false, 'not the type field');
    assert.equal(any(of({ meta: { kind: 7 } })), false, 'not a string');
    assert.equal(any(of({ meta: null })), false);
    assert.equal(any(of({})), false);
  });
});
