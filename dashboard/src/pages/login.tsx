import { useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorText } from '../components';

/**
 * The operator token, posted once to open a session. The service answers with an httpOnly cookie; the
 * token stays in this form's field, never in the URL, storage or the page's state after the request.
 */
export function Login({ loggedIn }: { loggedIn: () => void }) {
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const field = form.elements.namedItem('token') as HTMLInputElement;
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', '/api/v1/session', { token: field.value.trim() }, { login: true });
      field.value = '';
      loggedIn();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form method="post" action="#" onSubmit={(e) => void submit(e)}>
        <h1>node-lifecycle</h1>
        <label>
          Operator token
          <input name="token" type="password" autocomplete="current-password" required autofocus />
        </label>
        <p class="muted">
          <code>npm start</code> prints where it is (<code>API token in …/api-token</code>), or it is the <code>API_TOKEN</code> the service was started with.
        </p>
        <ErrorText error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
