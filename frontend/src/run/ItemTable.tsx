// One row per item of the run; a click opens the item's step outputs.
import { memo, useMemo, useState } from "react";
import { useRunStore, type RunItem } from "../store/runStore";
import { attemptsByItem, formatDuration, itemLabel, sortItems } from "./metrics";

type Filter = "all" | "running" | "succeeded" | "failed" | "cancelled";

const ItemRow = memo(function ItemRow(props: {
  item: RunItem;
  attempts: number;
  nested: boolean;
  selected: boolean;
  onSelect: (key: string) => void;
}) {
  const { item, attempts, nested, selected, onSelect } = props;
  const label = itemLabel(item.data);
  return (
    <tr
      data-testid="item-row"
      data-item-key={item.key}
      data-status={item.status}
      className={selected ? "kr-selected" : undefined}
      tabIndex={0}
      onClick={() => onSelect(item.key)}
      onKeyDown={(e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onSelect(item.key);
        }
      }}
    >
      <td className="kr-num" title={item.key}>
        {nested ? item.key : item.index}
      </td>
      <td className="kr-label-cell" title={label}>
        {label}
      </td>
      <td>
        <span className={`kr-badge kr-s-${item.status}`}>{item.status}</span>
      </td>
      <td className="kr-num">{formatDuration(item.duration)}</td>
      <td className="kr-num">{attempts || ""}</td>
      <td className="kr-err-cell" title={item.error}>
        {item.failed_block && item.error ? `${item.failed_block}: ${item.error}` : item.error}
      </td>
    </tr>
  );
});

export function ItemTable(props: { selected: string | null; onSelect: (key: string) => void }) {
  const items = useRunStore((s) => s.items);
  const steps = useRunStore((s) => s.steps);
  const [filter, setFilter] = useState<Filter>("all");
  const attempts = useMemo(() => attemptsByItem(steps), [steps]);
  const rows = useMemo(() => {
    const all = sortItems(Object.values(items));
    return filter === "all" ? all : all.filter((i) => i.status === filter);
  }, [items, filter]);
  const count = Object.keys(items).length;

  return (
    <div className="kr-items">
      <div className="kr-row kr-small">
        <strong>Items</strong>
        <span className="kr-muted">{count}</span>
        <select value={filter} data-testid="item-filter" onChange={(e) => setFilter(e.target.value as Filter)}>
          <option value="all">all</option>
          <option value="running">running</option>
          <option value="succeeded">succeeded</option>
          <option value="failed">failed</option>
          <option value="cancelled">cancelled</option>
        </select>
      </div>
      <div className="kr-table-wrap">
        <table className="kr-table" data-testid="item-table">
          <thead>
            <tr>
              <th>#</th>
              <th>Item</th>
              <th>Status</th>
              <th>Duration</th>
              <th>Attempts</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((item) => (
              <ItemRow
                key={item.key}
                item={item}
                attempts={item.attempts ?? attempts[item.key] ?? 0}
                nested={Boolean(item.parent_key)}
                selected={item.key === props.selected}
                onSelect={props.onSelect}
              />
            ))}
          </tbody>
        </table>
        {count === 0 && <p className="kr-muted">No loop items yet.</p>}
      </div>
    </div>
  );
}
