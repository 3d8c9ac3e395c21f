// One id per event object, shared by every sink: a retried write of the same object (a
// RetryingSink, a Queue) carries the id of its first attempt, in whichever sink it goes to.
const ids = new WeakMap<object, string>();

/**
 * The default message id of an event: a random UUID, generated once per event object (kept in a
 * `WeakMap`, so it goes with the object) and reused on every later write of it. A primitive
 * cannot be remembered, so it gets a fresh id on every call.
 * @internal
 */
export function stableId(event: unknown): string {
  if ((typeof event !== 'object' || event === null) && typeof event !== 'function') {
    return crypto.randomUUID();
  }
  let id = ids.get(event);
  if (id === undefined) {
    id = crypto.randomUUID();
    ids.set(event, id);
  }
  return id;
}
