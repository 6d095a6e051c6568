// The agent's response format: rows of field name + type (+ enum / min / max / required),
// generating {type: "object", properties, required, additionalProperties: false}; or raw JSON.
import { useEffect, useState } from "react";
import { draftKey, useGraphStore } from "../store/graphStore";
import { JsonField } from "./fields";
import { useDraft } from "./useDraft";

export const FIELD_TYPES = ["string", "integer", "number", "boolean"] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

export interface SchemaRow {
  name: string;
  type: FieldType;
  enumText: string;
  min: string;
  max: string;
  required: boolean;
}

const SIMPLE_KEYS = new Set(["type", "enum", "minimum", "maximum", "description"]);

/** Rows for a schema the builder can represent, or null (then only raw JSON editing). */
export function schemaToRows(value: unknown): SchemaRow[] | null {
  if (value === undefined || value === null) return [];
  if (typeof value !== "object" || Array.isArray(value)) return null;
  const schema = value as Record<string, unknown>;
  if (schema.type !== "object") return null;
  for (const key of Object.keys(schema)) {
    if (!["type", "properties", "required", "additionalProperties"].includes(key)) return null;
  }
  if (schema.additionalProperties !== undefined && schema.additionalProperties !== false) return null;
  const required = Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  if (typeof props !== "object" || Array.isArray(props)) return null;
  const rows: SchemaRow[] = [];
  for (const [name, prop] of Object.entries(props)) {
    if (!prop || typeof prop !== "object") return null;
    if (!FIELD_TYPES.includes(prop.type as FieldType)) return null;
    if (Object.keys(prop).some((k) => !SIMPLE_KEYS.has(k))) return null;
    if (prop.description !== undefined) return null;
    if (prop.enum !== undefined && !Array.isArray(prop.enum)) return null;
    rows.push({
      name,
      type: prop.type as FieldType,
      enumText: Array.isArray(prop.enum) ? prop.enum.map(String).join(", ") : "",
      min: typeof prop.minimum === "number" ? String(prop.minimum) : "",
      max: typeof prop.maximum === "number" ? String(prop.maximum) : "",
      required: required.includes(name),
    });
  }
  return rows;
}

function enumOptions(row: SchemaRow): string[] {
  return row.enumText
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** What is wrong with each row (null when fine): duplicate names, allowed values of the wrong type, min > max. */
export function rowProblems(rows: SchemaRow[]): (string | null)[] {
  const seen = new Set<string>();
  return rows.map((row) => {
    const name = row.name.trim();
    const problems: string[] = [];
    if (name) {
      if (seen.has(name)) problems.push(`duplicate field name '${name}'`);
      seen.add(name);
    }
    if (row.type === "integer" || row.type === "number") {
      const bad = enumOptions(row).filter((o) => {
        const n = Number(o);
        return !Number.isFinite(n) || (row.type === "integer" && !Number.isInteger(n));
      });
      if (bad.length) {
        problems.push(
          `allowed values must be ${row.type === "integer" ? "integers" : "numbers"}: ${bad.map((b) => `'${b}'`).join(", ")}`,
        );
      }
      const min = row.min.trim() === "" ? null : Number(row.min);
      const max = row.max.trim() === "" ? null : Number(row.max);
      if (min !== null && max !== null && min > max) problems.push("min is greater than max");
    }
    return problems.length ? problems.join("; ") : null;
  });
}

/** The first problem of the rows, prefixed with its row, or null. */
export function firstRowProblem(rows: SchemaRow[]): string | null {
  const problems = rowProblems(rows);
  const index = problems.findIndex(Boolean);
  return index < 0 ? null : `field ${index + 1} (${rows[index].name.trim() || "unnamed"}): ${problems[index]}`;
}

/**
 * The schema of the rows (unnamed rows skipped). Rows with problems (`rowProblems`) are not
 * meant to be written: the editor keeps the last good schema meanwhile. Even so, a duplicate
 * name never overwrites the first one and `required` lists each name once.
 */
export function rowsToSchema(rows: SchemaRow[]): Record<string, unknown> | undefined {
  const named = rows.filter((r) => r.name.trim());
  if (!named.length) return undefined;
  const properties: Record<string, Record<string, unknown>> = {};
  const required: string[] = [];
  for (const row of named) {
    const name = row.name.trim();
    if (name in properties) continue;
    const prop: Record<string, unknown> = { type: row.type };
    const numeric = row.type === "integer" || row.type === "number";
    const options = enumOptions(row);
    if (options.length && row.type !== "boolean") {
      prop.enum = numeric ? options.map(Number).filter((n) => Number.isFinite(n)) : options;
    }
    if (numeric && row.min.trim() !== "" && Number.isFinite(Number(row.min))) prop.minimum = Number(row.min);
    if (numeric && row.max.trim() !== "" && Number.isFinite(Number(row.max))) prop.maximum = Number(row.max);
    properties[name] = prop;
    if (row.required) required.push(name);
  }
  return {
    type: "object",
    properties,
    required,
    additionalProperties: false,
  };
}

export function SchemaBuilder(props: {
  blockId?: string;
  name: string;
  value: unknown;
  onChange: (value: unknown) => void;
  invalid: boolean;
  inputId: string;
}) {
  const { blockId, name, value, onChange, invalid, inputId } = props;
  const representable = schemaToRows(value) !== null;
  const [mode, setMode] = useState<"fields" | "json">(() => {
    const kept = blockId ? useGraphStore.getState().fieldDrafts[draftKey(blockId, name)]?.draft : undefined;
    if (typeof kept === "string") return "json"; // unparseable JSON was being edited
    return representable ? "fields" : "json";
  });
  const { draft: rows, setDraft: setRows, committed } = useDraft<unknown, SchemaRow[]>(
    value,
    (v) => schemaToRows(v) ?? [],
    () => {
      const kept = blockId ? useGraphStore.getState().fieldDrafts[draftKey(blockId, name)]?.draft : undefined;
      return Array.isArray(kept) ? (kept as SchemaRow[]) : undefined;
    },
  );
  const problems = rowProblems(rows);
  const problem = mode === "fields" ? firstRowProblem(rows) : null;

  // Rows with problems are not written: the config keeps the last good schema, the rows are
  // kept with the graph store (Save refuses, naming the block and field, until they are fixed).
  useEffect(() => {
    if (!blockId || mode !== "fields") return;
    useGraphStore.getState().setFieldDraft(blockId, name, problem ? { message: problem, draft: rows } : null);
  }, [blockId, name, mode, problem, rows]);

  const update = (next: SchemaRow[]) => {
    setRows(next);
    if (rowProblems(next).some(Boolean)) return;
    const schema = rowsToSchema(next);
    committed(schema);
    onChange(schema);
  };
  const switchMode = (next: "fields" | "json") => {
    if (next === mode) return;
    // Leaving a mode drops what it could not write; the other mode starts from the config.
    if (blockId) useGraphStore.getState().setFieldDraft(blockId, name, null);
    setRows(schemaToRows(value) ?? []);
    setMode(next);
  };
  const patch = (i: number, change: Partial<SchemaRow>) => update(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));

  return (
    <div className={`schema-builder${invalid ? " input-invalid" : ""}`} data-field={name} id={inputId}>
      <div className="segmented" role="tablist">
        <button
          type="button"
          role="tab"
          aria-selected={mode === "fields"}
          data-action="schema-fields"
          disabled={!representable}
          title={representable ? undefined : "This schema uses features the field builder does not cover"}
          onClick={() => switchMode("fields")}
        >
          Fields
        </button>
        <button type="button" role="tab" aria-selected={mode === "json"} data-action="schema-json" onClick={() => switchMode("json")}>
          JSON
        </button>
      </div>
      {mode === "json" ? (
        <JsonField
          blockId={blockId}
          draftField={name}
          name={`${name}.json`}
          value={value}
          onChange={onChange}
          invalid={invalid}
          inputId={`${inputId}-json`}
          strictObject
          rows={10}
        />
      ) : (
        <>
          {rows.length > 0 && (
            <div className="schema-head">
              <span>Field</span>
              <span>Type</span>
              <span title="required">Req.</span>
              <span />
            </div>
          )}
          {rows.map((row, i) => {
            const numeric = row.type === "integer" || row.type === "number";
            const rowProblem = problems[i];
            return (
              <div className={`schema-row${rowProblem ? " has-error" : ""}`} data-schema-row={i} key={i}>
                <input
                  type="text"
                  name={`${name}.${i}.name`}
                  data-schema="name"
                  className={rowProblem?.includes("duplicate") ? "input-invalid" : undefined}
                  placeholder="field_name"
                  spellCheck={false}
                  value={row.name}
                  onChange={(e) => patch(i, { name: e.target.value })}
                />
                <select
                  name={`${name}.${i}.type`}
                  data-schema="type"
                  value={row.type}
                  onChange={(e) => patch(i, { type: e.target.value as FieldType })}
                >
                  {FIELD_TYPES.map((t) => (
                    <option key={t} value={t}>
                      {t}
                    </option>
                  ))}
                </select>
                <div className="schema-options">
                  {row.type !== "boolean" && (
                    <input
                      type="text"
                      name={`${name}.${i}.enum`}
                      data-schema="enum"
                      className={rowProblem?.includes("allowed values") ? "input-invalid" : undefined}
                      placeholder={numeric ? "allowed values: 1, 2, 3 (optional)" : "allowed values: a, b, c (optional)"}
                      value={row.enumText}
                      onChange={(e) => patch(i, { enumText: e.target.value })}
                    />
                  )}
                  {numeric && (
                    <span className="schema-range">
                      <input
                        type="number"
                        name={`${name}.${i}.min`}
                        data-schema="min"
                        placeholder="min"
                        value={row.min}
                        onChange={(e) => patch(i, { min: e.target.value })}
                      />
                      <input
                        type="number"
                        name={`${name}.${i}.max`}
                        data-schema="max"
                        placeholder="max"
                        value={row.max}
                        onChange={(e) => patch(i, { max: e.target.value })}
                      />
                    </span>
                  )}
                </div>
                <input
                  type="checkbox"
                  name={`${name}.${i}.required`}
                  data-schema="required"
                  title="required"
                  checked={row.required}
                  onChange={(e) => patch(i, { required: e.target.checked })}
                />
                <button
                  type="button"
                  className="icon-button"
                  data-action="remove-row"
                  aria-label={`Remove ${row.name || "field"}`}
                  onClick={() => update(rows.filter((_, j) => j !== i))}
                >
                  ×
                </button>
                {rowProblem && (
                  <div className="field-error schema-row-error" data-schema-error={i} role="alert">
                    {rowProblem}
                  </div>
                )}
              </div>
            );
          })}
          {problem && (
            <div className="field-hint" data-schema-pending>
              Not applied: the response format keeps its last valid fields until this is fixed.
            </div>
          )}
          <button
            type="button"
            className="link-button"
            data-action="add-row"
            onClick={() => setRows([...rows, { name: "", type: "string", enumText: "", min: "", max: "", required: true }])}
          >
            + Add field
          </button>
          {rows.length === 0 && <div className="field-hint">No fields: the answer is plain text in &lt;…content&gt;.</div>}
        </>
      )}
    </div>
  );
}
