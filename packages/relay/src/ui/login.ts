// The dashboard's sign-in page: plain HTML with a form that posts the admin token to
// /ui/login (session.ts issues the cookie). It has no script at all, and its one inline style
// is allowed by its hash in the page's own Content-Security-Policy, so the page loads nothing,
// not even from the relay, before the operator is signed in.
import { createHash } from 'node:crypto';

const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; }
main { width: min(24rem, calc(100vw - 2rem)); padding: 1.5rem; border: 1px solid GrayText;
  border-radius: 0.5rem; }
h1 { margin: 0 0 0.5rem; font-size: 1.25rem; }
p { margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin-bottom: 0.25rem; }
input { box-sizing: border-box; width: 100%; font: inherit; padding: 0.5rem; margin-bottom: 1rem; }
button { font: inherit; padding: 0.5rem 1rem; cursor: pointer; }
input:focus-visible, button:focus-visible { outline: 3px solid Highlight; outline-offset: 2px; }
.error { color: #b00020; font-weight: 600; }
@media (prefers-color-scheme: dark) { .error { color: #ff8a80; } }
`;

/** The sign-in page's Content-Security-Policy: its own inline style (by hash) and nothing else. */
export const LOGIN_CSP =
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/**
 * The sign-in page, with `error` (a sentence) shown above the form when the last try failed.
 * The form posts to `login` relative to the page, so that it works for any `/ui/…` path and
 * behind a proxy's path prefix.
 *
 * @example
 * res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': LOGIN_CSP });
 * res.end(loginPage({ error: 'That is not the admin token.' }));
 */
export function loginPage(options: { error?: string } = {}): string {
  const error =
    options.error === undefined
      ? ''
      : `\n      <p class="error" role="alert" id="login-error">${escapeHtml(options.error)}</p>`;
  const described = options.error === undefined ? '' : ' aria-describedby="login-error"';
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Sign in · eventsinks relay</title>
    <style>${STYLE}</style>
  </head>
  <body>
    <main>
      <h1>eventsinks relay</h1>
      <p>The dashboard needs the relay's admin token.</p>${error}
      <form method="post" action="login">
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus${described} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  </body>
</html>
`;
}
