import { useState } from "preact/hooks";
import { setToken } from "./api.js";

export function TokenForm({ message }) {
  const [value, setValue] = useState("");
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim());
        location.reload();
      }}
    >
      <h2>This server needs a token</h2>
      <p>{message && message.includes("not one this server knows") ? "That token is not one this server knows (revoked, rotated or mistyped)." : "Sign in with your token."}</p>
      <label>
        Your token <input type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <button type="submit">Sign in</button>
      <p class="muted">It is kept in this browser tab only. An admin gives you one with <code>modelcycle server users add</code>.</p>
    </form>
  );
}

export function Failure({ error }) {
  if (!error) return null;
  if (error.status === 401) return <TokenForm message={error.message} />;
  return (
    <div class="error" role="alert">
      <strong>{error.code || "Error"}</strong> {error.message}
    </div>
  );
}
