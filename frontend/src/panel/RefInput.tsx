// A text input or textarea with the reference picker: typing "<" lists the references the
// server says are in scope for this block (POST /validate → scopes[blockId]): names and types
// only, never values. Choosing one inserts "<ref>" at the caret.
import { useLayoutEffect, useRef, useState, type CSSProperties, type ChangeEvent, type KeyboardEvent } from "react";
import { useGraphStore } from "../store/graphStore";
import type { ScopeEntry } from "../types";
import { filterScope, insertReference, openBase, openReference, typedPathEntry } from "./refs";

const NO_ENTRIES: ScopeEntry[] = [];
const PICKER_MIN_WIDTH = 280;
const PICKER_MARGIN = 8;

/** The picker's place under its input: at least 280px wide, but inside the settings panel. */
function pickerPlacement(input: HTMLElement): CSSProperties | undefined {
  const box = input.getBoundingClientRect();
  const panel = (input.closest(".config-panel") ?? document.body).getBoundingClientRect();
  const room = panel.width - 2 * PICKER_MARGIN;
  if (!(box.width > 0) || !(room > 0)) return undefined;
  const width = Math.min(Math.max(box.width, PICKER_MIN_WIDTH), room);
  let left = 0;
  if (box.left + width > panel.right - PICKER_MARGIN) left = panel.right - PICKER_MARGIN - width - box.left;
  if (box.left + left < panel.left + PICKER_MARGIN) left = panel.left + PICKER_MARGIN - box.left;
  return { left, right: "auto", width };
}

interface Props {
  blockId: string;
  value: string;
  onChange: (text: string) => void;
  field: string;
  id?: string;
  multiline?: boolean;
  rows?: number;
  placeholder?: string;
  className?: string;
  invalid?: boolean;
  "data-kv"?: string;
}

export function RefInput(props: Props) {
  const { blockId, value, onChange, field, id, multiline, rows = 3, placeholder, className, invalid } = props;
  const scope = useGraphStore((s) => s.scopes[blockId] ?? NO_ENTRIES);
  const [open, setOpen] = useState<{ anchor: number; query: string } | null>(null);
  const [active, setActive] = useState(0);
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const caretAfter = useRef<number | null>(null);
  const listRef = useRef<HTMLUListElement>(null);
  const [placement, setPlacement] = useState<CSSProperties | undefined>(undefined);

  const found = open ? filterScope(scope, open.query) : NO_ENTRIES;
  // Below an open-schema reference (type any), the typed path itself is a completion.
  const typed = open ? typedPathEntry(scope, open.query) : null;
  const matches = typed ? [typed, ...found] : found;
  const openPrefix = open && !typed && open.query.endsWith(".") ? openBase(scope, `${open.query}x`) : null;

  const isOpen = Boolean(open);
  useLayoutEffect(() => {
    if (isOpen && ref.current) setPlacement(pickerPlacement(ref.current));
  }, [isOpen]);

  useLayoutEffect(() => {
    if (caretAfter.current !== null && ref.current) {
      ref.current.focus();
      ref.current.setSelectionRange(caretAfter.current, caretAfter.current);
      caretAfter.current = null;
    }
  });

  useLayoutEffect(() => {
    listRef.current?.querySelector('[aria-selected="true"]')?.scrollIntoView?.({ block: "nearest" });
  }, [active, open]);

  const track = (text: string, caret: number, typedLt: boolean) => {
    const found = openReference(text, caret);
    if (found && (typedLt || open)) {
      if (!open || open.anchor !== found.anchor) setActive(0);
      setOpen(found);
    } else {
      setOpen(null);
    }
  };

  const handleChange = (event: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => {
    const text = event.target.value;
    const caret = event.target.selectionStart ?? text.length;
    onChange(text);
    track(text, caret, text.length > value.length && text[caret - 1] === "<");
  };

  const choose = (entry: ScopeEntry) => {
    if (!open) return;
    const caret = ref.current?.selectionStart ?? value.length;
    const result = insertReference(value, open.anchor, caret, entry.ref);
    caretAfter.current = result.caret;
    setOpen(null);
    onChange(result.text);
  };

  const onKeyDown = (event: KeyboardEvent<HTMLInputElement | HTMLTextAreaElement>) => {
    if (!open) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      setOpen(null);
    } else if (event.key === "ArrowDown" && matches.length) {
      event.preventDefault();
      setActive((i) => (i + 1) % matches.length);
    } else if (event.key === "ArrowUp" && matches.length) {
      event.preventDefault();
      setActive((i) => (i - 1 + matches.length) % matches.length);
    } else if ((event.key === "Enter" || event.key === "Tab") && matches.length) {
      event.preventDefault();
      choose(matches[Math.min(active, matches.length - 1)]);
    }
  };

  const common = {
    id,
    name: field,
    "data-field": field,
    "data-kv": props["data-kv"],
    value,
    placeholder,
    className: `${className ?? ""}${invalid ? " input-invalid" : ""}`,
    spellCheck: false,
    autoComplete: "off",
    "aria-autocomplete": "list" as const,
    "aria-expanded": Boolean(open),
    onChange: handleChange,
    onKeyDown,
    onBlur: () => setOpen(null),
    onClick: (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement }) => {
      if (open) track(e.currentTarget.value, e.currentTarget.selectionStart ?? 0, false);
    },
  };

  return (
    <div className="ref-input">
      {multiline ? <textarea ref={ref} rows={rows} {...common} /> : <input ref={ref} type="text" {...common} />}
      {open && (
        <ul className="ref-picker" role="listbox" data-testid="ref-picker" ref={listRef} style={placement}>
          {matches.length === 0 && (
            <li className="ref-empty">
              {openPrefix
                ? `Type a field name: <${openPrefix.ref}> can hold anything`
                : scope.length
                  ? "No reference matches"
                  : "No references in scope: connect an upstream block"}
            </li>
          )}
          {matches.map((entry, index) => (
            <li
              key={entry === typed ? `typed:${entry.ref}` : entry.ref}
              role="option"
              aria-selected={index === active}
              data-ref={entry.ref}
              data-ref-typed={entry === typed ? "true" : undefined}
              title={`<${entry.ref}>`}
              className={index === active ? "active" : undefined}
              onMouseDown={(e) => {
                e.preventDefault(); // keep the focus (and caret) in the field
                choose(entry);
              }}
              onMouseEnter={() => setActive(index)}
            >
              {entry === typed ? (
                <>
                  <span className="ref-name">
                    use <code>{`<${entry.ref}>`}</code>
                  </span>
                  <span className="ref-type">path</span>
                </>
              ) : (
                <>
                  <code className="ref-name">{`<${entry.ref}>`}</code>
                  <span className="ref-type">{entry.type}</span>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
