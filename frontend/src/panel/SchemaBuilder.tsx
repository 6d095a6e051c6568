// The agent's response format: rows of field name + type (+ enum / min / max / required),
// generating {type: "object", properties, required, additionalProperties: false}; or raw JSON.
import { useState } from "react";
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

export function rowsToSchema(rows: SchemaRow[]): Record<string, unknown> | undefined {
  const named = rows.filter((r) => r.name.trim());
  if (!named.length) return undefined;
  const properties: Record<string, Record<string, unknown>> = {};
  for (const row of named) {
    const prop: Record<string, unknown> = { type: row.type };
    const numeric = row.type === "integer" || row.type === "number";
    const options = row.enumText
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (options.length && row.type !== "boolean") {
      prop.enum = numeric ? options.map(Number).filter((n) => Number.isFinite(n)) : options;
    }
    if (numeric && row.min.trim() !== "" && Number.isFinite(Number(row.min))) prop.minimum = Number(row.min);
    if (numeric && row.max.trim() !== "" && Number.isFinite(Number(row.max))) prop.maximum = Number(row.max);
    properties[row.name.trim()] = prop;
  }
  return {
    type: "object",
    properties,
    required: named.filter((r) => r.required).map((r) => r.name.trim()),
    additionalProperties: false,
  };
}

export function SchemaBuilder(props: {
  name: string;
  value: unknown;
  onChange: (value: unknown) => void;
  invalid: boolean;
  inputId: string;
}) {
  const { name, value, onChange, invalid, inputId } = props;
  const representable = schemaToRows(value) !== null;
  const [mode, setMode] = useState<"fields" | "json">(representable ? "fields" : "json");
  const { draft: rows, setDraft: setRows, committed } = useDraft<unknown, SchemaRow[]>(value, (v) => schemaToRows(v) ?? []);

  const update = (next: SchemaRow[]) => {
    setRows(next);
    const schema = rowsToSchema(next);
    committed(schema);
    onChange(schema);
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
          onClick={() => setMode("fields")}
        >
          Fields
        </button>
        <button type="button" role="tab" aria-selected={mode === "json"} data-action="schema-json" onClick={() => setMode("json")}>
          JSON
        </button>
      </div>
      {mode === "json" ? (
        <JsonField name={`${name}.json`} value={value} onChange={onChange} invalid={invalid} inputId={`${inputId}-json`} strictObject rows={10} />
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
            return (
              <div className="schema-row" data-schema-row={i} key={i}>
                <input
                  type="text"
                  name={`${name}.${i}.name`}
                  data-schema="name"
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
                      placeholder="allowed values: a, b, c (optional)"
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
              </div>
            );
          })}
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
