// A destination's state as a labelled badge (the word itself, not only a colour).
import type { DestinationStatus } from './api.js';

/** The state badge: `healthy`, `failing` or `disabled`. */
export function State({ state }: { state: DestinationStatus['state'] }) {
  return <span class={`state state-${state}`}>{state}</span>;
}
