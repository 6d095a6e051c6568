// Fields that apply their text only on blur or Enter (a block's name): Save and Publish
// commit them first, so what is saved is what is on screen, not the last applied value.
import { useEffect, useRef } from "react";

const pending = new Set<{ current: () => void }>();

/** While mounted, `commit` runs before every save (it must be cheap when nothing changed). */
export function usePendingEdit(commit: () => void): void {
  const ref = useRef(commit);
  useEffect(() => {
    ref.current = commit;
  });
  useEffect(() => {
    const entry = ref;
    pending.add(entry);
    return () => {
      pending.delete(entry);
    };
  }, []);
}

/** Applies every field's typed text that is not applied yet. */
export function commitPendingEdits(): void {
  for (const entry of pending) entry.current();
}
