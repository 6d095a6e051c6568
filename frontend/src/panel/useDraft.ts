import { useEffect, useRef, useState } from "react";

/**
 * Local text for a field whose stored value is parsed from it (numbers, JSON, key/value rows).
 * The draft follows the stored value only when it changes from elsewhere (undo, another
 * editor), never when it echoes what this field just committed.
 */
export function useDraft<V, D>(
  value: V,
  toDraft: (value: V) => D,
  /** A draft kept from an earlier mount (e.g. text that did not parse yet), if any. */
  restore?: () => D | undefined,
): { draft: D; setDraft: (draft: D) => void; committed: (value: V) => void } {
  const [draft, setDraft] = useState<D>(() => {
    const kept = restore?.();
    return kept !== undefined ? kept : toDraft(value);
  });
  const last = useRef<string>(JSON.stringify(value ?? null));
  const toDraftRef = useRef(toDraft);
  // Refs are written after render, never during it (the effect below runs after this one).
  useEffect(() => {
    toDraftRef.current = toDraft;
  });
  useEffect(() => {
    const key = JSON.stringify(value ?? null);
    if (key !== last.current) {
      last.current = key;
      setDraft(toDraftRef.current(value));
    }
  }, [value]);
  return {
    draft,
    setDraft,
    committed: (next: V) => {
      last.current = JSON.stringify(next ?? null);
    },
  };
}
