// The difference between two versions as the server computes it: blocks added, removed,
// changed (each field with its two values) or only moved, edges added or removed, and pinned
// test data (never run) listed apart.
import type { FieldChange, VersionDiff } from "../types";

function shown(value: unknown): string {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

function Field({ field }: { field: FieldChange }) {
  return (
    <li className={`diff-field ${field.change}`} data-testid="diff-field" data-path={field.path}>
      <code>{field.path}</code> <span className="diff-change">{field.change}</span>
      <div className="diff-values">
        {field.change !== "added" && <pre className="diff-before">{shown(field.before)}</pre>}
        {field.change !== "removed" && <pre className="diff-after">{shown(field.after)}</pre>}
      </div>
    </li>
  );
}

export function DiffView({ diff }: { diff: VersionDiff }) {
  const { blocks, edges } = diff;
  const pins = diff.pins ?? { added: [], removed: [], changed: [] };
  const pinLines = (
    [
      ["pinned", pins.added],
      ["unpinned", pins.removed],
      ["pin changed", pins.changed],
    ] as const
  ).filter(([, list]) => list.length > 0);
  const empty =
    !pinLines.length &&
    !blocks.added.length &&
    !blocks.removed.length &&
    !blocks.changed.length &&
    !blocks.moved.length &&
    !edges.added.length &&
    !edges.removed.length;
  return (
    <div className="diff-view" data-testid="version-diff">
      <h3>
        v{diff.from} → v{diff.to}
      </h3>
      {empty && <p className="muted">The two versions have the same graph.</p>}
      {blocks.added.map((b) => (
        <div key={`a-${b.id}`} className="diff-block added" data-testid="diff-block-added">
          + {b.name} <span className="muted">({b.type})</span>
        </div>
      ))}
      {blocks.removed.map((b) => (
        <div key={`r-${b.id}`} className="diff-block removed" data-testid="diff-block-removed">
          − {b.name} <span className="muted">({b.type})</span>
        </div>
      ))}
      {blocks.changed.map((b) => (
        <div key={`c-${b.id}`} className="diff-block changed" data-testid="diff-block-changed" data-block={b.id}>
          ~ {b.name} <span className="muted">({b.type})</span>
          <ul>
            {b.fields.map((f) => (
              <Field key={f.path} field={f} />
            ))}
          </ul>
        </div>
      ))}
      {pinLines.map(([label, list]) => (
        <div key={label} className="diff-block moved muted" data-testid="diff-pins">
          Test data {label} (never run): {list.map((b) => b.name).join(", ")}
        </div>
      ))}
      {blocks.moved.length > 0 && (
        <div className="diff-block moved muted">Moved on the canvas: {blocks.moved.map((b) => b.name).join(", ")}</div>
      )}
      {edges.added.map((e) => (
        <div key={`ea-${e.source}-${e.target}-${e.handle ?? ""}`} className="diff-edge added">
          + edge {e.source} → {e.target}
        </div>
      ))}
      {edges.removed.map((e) => (
        <div key={`er-${e.source}-${e.target}-${e.handle ?? ""}`} className="diff-edge removed">
          − edge {e.source} → {e.target}
        </div>
      ))}
    </div>
  );
}
