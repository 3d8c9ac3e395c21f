// What a DurableQueue hands down to the sinks below it, without either side importing the
// other: the stored id of each event it delivers, and a brand on sinks that accept events into
// memory before delivering them (which would let events leave the file undelivered).

// Event object → its stored id ("msg_<file id>_<row id>"). Weak: an event delivered and
// forgotten takes its entry with it. Primitives cannot be keys: they have no stored id here.
const storedIds = new WeakMap<object, string>();

/** Records the stored id of an event object a DurableQueue is about to deliver. @internal */
export function setStoredId(event: unknown, id: string): void {
  if ((typeof event === 'object' && event !== null) || typeof event === 'function') {
    storedIds.set(event, id);
  }
}

/** The stored id of `event`, if a DurableQueue delivered this very object. @internal */
export function getStoredId(event: unknown): string | undefined {
  if ((typeof event === 'object' && event !== null) || typeof event === 'function') {
    return storedIds.get(event);
  }
  return undefined;
}

// Symbol.for: two installed copies of the package recognise each other's sinks.
const ACCEPTS_BEFORE_DELIVERY = Symbol.for('eventsinks.acceptsBeforeDelivery');

/**
 * Marks instances of a sink class as accepting events into memory before delivering them
 * (a write settles on acceptance, not delivery). @internal
 */
export function markAcceptsBeforeDelivery(target: object): void {
  Object.defineProperty(target, ACCEPTS_BEFORE_DELIVERY, { value: true });
}

/** True for a sink marked with {@link markAcceptsBeforeDelivery}. @internal */
export function acceptsBeforeDelivery(sink: unknown): boolean {
  return (
    typeof sink === 'object' &&
    sink !== null &&
    (sink as { [ACCEPTS_BEFORE_DELIVERY]?: unknown })[ACCEPTS_BEFORE_DELIVERY] === true
  );
}
