// Next to an `<env.NAME>` error whose secret is missing: a link to add it on the secrets page.
import type { ValidationError } from "../types";

export const addSecretUrl = (name: string) => `/secrets/?add=${encodeURIComponent(name)}`;

export function AddSecretLink({ error }: { error: ValidationError }) {
  if (!error.secret) return null;
  return (
    <>
      {" "}
      <a href={addSecretUrl(error.secret)} target="_blank" rel="noopener" data-action="add-secret" data-secret={error.secret}>
        Add secret {error.secret}
      </a>
    </>
  );
}
