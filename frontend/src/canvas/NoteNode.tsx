// A sticky note: free text on the canvas, resizable, saved in the graph's `notes` and never
// run. Double-click to edit; the text leaves edit mode on blur or Esc.
import { NodeResizer, type NodeProps } from "@xyflow/react";
import { memo, useEffect, useRef, useState } from "react";
import { MAX_NOTE_CHARS, useGraphStore, type BlockNode } from "../store/graphStore";

export const NoteNode = memo(function NoteNode({ id, data, selected }: NodeProps<BlockNode>) {
  const text = String(data.config.text ?? "");
  const [editing, setEditing] = useState(text === "");
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (editing) area.current?.focus();
  }, [editing]);
  return (
    <>
      <NodeResizer isVisible={Boolean(selected)} minWidth={120} minHeight={60} lineClassName="note-resize-line" />
      <div className={`note-node${selected ? " selected" : ""}`} data-note-id={id} onDoubleClick={() => setEditing(true)}>
        {editing ? (
          <textarea
            ref={area}
            className="note-text nodrag nowheel"
            aria-label="Note"
            data-testid="note-text"
            value={text}
            maxLength={MAX_NOTE_CHARS}
            placeholder="Write a note…"
            onChange={(e) => useGraphStore.getState().updateNote(id, e.target.value)}
            onBlur={() => setEditing(false)}
            onKeyDown={(e) => {
              if (e.key === "Escape") (e.target as HTMLTextAreaElement).blur();
            }}
          />
        ) : (
          <div className="note-text" data-testid="note-view" title="Double-click to edit">
            {text || <span className="muted">Empty note</span>}
          </div>
        )}
      </div>
    </>
  );
});
