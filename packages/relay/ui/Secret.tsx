// A webhook destination's signing secret: "Rotate signing secret" calls the admin API's
// rotate-secret, then shows the new secret once (with a copy button) and until when the
// previous ones keep signing. Nothing is kept: leaving the page forgets the secret. A
// destination declared in the config file cannot be rotated here; the relay's 409 says why.
import { useRef, useState } from 'preact/hooks';
import { ApiError, api, errorText, type RotatedSecret } from './api.js';
import { time } from './format.js';

/** Copies `text` to the clipboard; falls back to the selected input where the API is missing. */
async function copy(text: string, input: HTMLInputElement | null): Promise<void> {
  if (navigator.clipboard !== undefined) return navigator.clipboard.writeText(text);
  // Outside a secure context (plain http to a name other than localhost) there is no
  // clipboard API: the old command still copies a selection.
  input?.select();
  if (!document.execCommand('copy')) throw new Error('the browser refused to copy; select it');
}

/** The section of a webhook destination's page. */
export function SigningSecret({ name, onChanged }: { name: string; onChanged: () => void }) {
  const [grace, setGrace] = useState('24h');
  const [busy, setBusy] = useState(false);
  const [rotated, setRotated] = useState<RotatedSecret | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [copied, setCopied] = useState<string | undefined>();
  const input = useRef<HTMLInputElement>(null);

  const rotate = async (): Promise<void> => {
    setBusy(true);
    setProblem(undefined);
    setCopied(undefined);
    try {
      setRotated(await api.rotateSecret(name, grace.trim()));
    } catch (error) {
      setRotated(undefined);
      // A 409 (declared in the file) or 400 says why in the API's own words.
      setProblem(error instanceof ApiError ? error.reason : errorText(error));
    } finally {
      setBusy(false);
      onChanged();
    }
  };

  return (
    <section aria-labelledby="secret-heading">
      <h2 id="secret-heading">Signing secret</h2>
      <form
        class="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          void rotate();
        }}
      >
        <label for="rotate-grace">Previous secret keeps signing for</label>
        <input
          id="rotate-grace"
          name="grace"
          type="text"
          value={grace}
          autoComplete="off"
          onInput={(event) => setGrace(event.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          Rotate signing secret
        </button>
      </form>
      {problem !== undefined && (
        <p role="alert" class="notice notice-error">
          Not rotated: {problem}
        </p>
      )}
      {rotated && (
        <div class="secret" role="group" aria-labelledby="new-secret-label">
          <p id="new-secret-label">
            <strong>New signing secret of {name}</strong>: shown this once. Give it to the receiver
            now; it signs every request from now on.
          </p>
          <div class="secret-value">
            <input
              ref={input}
              aria-labelledby="new-secret-label"
              readOnly
              value={rotated.secret}
              spellcheck={false}
              onFocus={(event) => event.currentTarget.select()}
            />
            <button
              type="button"
              onClick={() =>
                void copy(rotated.secret, input.current).then(
                  () => setCopied('Copied to the clipboard.'),
                  (error: unknown) => setCopied(`Not copied: ${errorText(error)}`),
                )
              }
            >
              Copy secret
            </button>
            <button type="button" onClick={() => setRotated(undefined)}>
              Done
            </button>
          </div>
          <p role="status">{copied}</p>
          {rotated.previous.length === 0 ? (
            <p>No previous secret signs any more.</p>
          ) : (
            <ul aria-label="Previous secrets">
              {rotated.previous.map((p, i) => (
                <li key={i}>
                  The previous secret also signs until{' '}
                  <time dateTime={p.expiresAt}>{time(p.expiresAt)}</time>.
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
