import { useState } from 'preact/hooks';

/** Shown when the API answers 401: the admin token is kept in sessionStorage for this tab only. */
export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="sign-in">
      <h1>Tandem console</h1>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          const response = await fetch('/api/integrations', {
            headers: { authorization: `Bearer ${value}` },
          });
          setBusy(false);
          if (response.ok) onSignedIn(value);
          else
            setError(
              response.status === 401
                ? 'That is not the admin token.'
                : `The server answered ${response.status}.`,
            );
        }}
      >
        <label for="admin-token">Admin token</label>
        <input
          id="admin-token"
          type="password"
          autoComplete="current-password"
          required
          value={value}
          onInput={(event) => setValue(event.currentTarget.value)}
          aria-describedby={error ? 'sign-in-error' : undefined}
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error ? (
          <p id="sign-in-error" class="problem" role="alert">
            {error}
          </p>
        ) : null}
      </form>
    </main>
  );
}
