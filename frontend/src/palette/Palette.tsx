// Every catalogue block type, draggable onto the canvas (HTML5 drag and drop). A click or
// Enter adds the block at the centre of the view instead. The search box filters by name,
// description and type; Enter in it adds the first match.
import { useReactFlow } from "@xyflow/react";
import { useMemo, useState, type DragEvent } from "react";
import { BlockIcon } from "../nodes/icons";
import { useGraphStore } from "../store/graphStore";
import type { CatalogueEntry } from "../types";

export const BLOCK_MIME = "application/klyntos-block";
/** Where the pointer holds the entry ({x, y} from its top-left), for placing a Loop on drop. */
export const GRAB_MIME = "application/klyntos-grab";

/** Entries matching every word of `query` (in label, description or type), label matches first. */
export function searchCatalogue(catalogue: CatalogueEntry[], query: string): CatalogueEntry[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return catalogue;
  const text = (e: CatalogueEntry) => `${e.label} ${e.type} ${e.description}`.toLowerCase();
  const found = catalogue.filter((e) => words.every((w) => text(e).includes(w)));
  const inLabel = (e: CatalogueEntry) => words.every((w) => `${e.label} ${e.type}`.toLowerCase().includes(w));
  return [...found.filter(inLabel), ...found.filter((e) => !inLabel(e))];
}

export function Palette({ catalogue }: { catalogue: CatalogueEntry[] }) {
  const { screenToFlowPosition } = useReactFlow();
  const [query, setQuery] = useState("");
  const shown = useMemo(() => searchCatalogue(catalogue, query), [catalogue, query]);

  const onDragStart = (event: DragEvent<HTMLElement>, type: string) => {
    event.dataTransfer.setData(BLOCK_MIME, type);
    event.dataTransfer.setData("text/plain", type);
    const rect = event.currentTarget.getBoundingClientRect();
    event.dataTransfer.setData(GRAB_MIME, JSON.stringify({ x: event.clientX - rect.left, y: event.clientY - rect.top }));
    event.dataTransfer.effectAllowed = "move";
  };

  const addAtCentre = (type: string) => {
    const pane = document.querySelector(".canvas .react-flow")?.getBoundingClientRect();
    const centre = pane
      ? screenToFlowPosition({ x: pane.left + pane.width / 2, y: pane.top + pane.height / 2 })
      : { x: 0, y: 0 };
    useGraphStore.getState().dropBlock(type, centre);
  };

  return (
    <nav className="palette" aria-label="Blocks">
      <div className="panel-title">Blocks</div>
      <input
        type="search"
        className="palette-search"
        placeholder="Search blocks"
        aria-label="Search blocks"
        data-testid="palette-search"
        value={query}
        maxLength={100}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && shown.length) {
            e.preventDefault();
            addAtCentre(shown[0].type);
          } else if (e.key === "Escape") {
            setQuery("");
          }
        }}
      />
      {shown.length === 0 && <p className="palette-none">No block matches “{query}”.</p>}
      <ul>
        {shown.map((entry) => (
          <li
            key={entry.type}
            className="palette-item"
            data-block-type={entry.type}
            draggable
            tabIndex={0}
            role="button"
            title={`${entry.description}\nDrag onto the canvas (or click to add).`}
            onDragStart={(e) => onDragStart(e, entry.type)}
            onClick={() => addAtCentre(entry.type)}
            onKeyDown={(e) => {
              if (e.key === "Enter" || e.key === " ") {
                e.preventDefault();
                addAtCentre(entry.type);
              }
            }}
          >
            <span className={`palette-icon type-${entry.type}`}>
              <BlockIcon name={entry.icon} size={16} />
            </span>
            <span className="palette-text">
              <span className="palette-label">{entry.label}</span>
              <span className="palette-desc">{entry.description}</span>
            </span>
          </li>
        ))}
      </ul>
      <p className="palette-hint">Drop a block inside a Loop to run it once per item.</p>
    </nav>
  );
}
