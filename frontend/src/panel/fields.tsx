// Config field editors generated from a block's config_schema.
import { useEffect, useId, type ReactNode } from "react";
import { draftKey, useGraphStore } from "../store/graphStore";
import type { JsonSchema, ScopeEntry, ValidationError } from "../types";
import { RefInput } from "./RefInput";
import { useDraft } from "./useDraft";
import { AddSecretLink } from "./AddSecretLink";

export type FieldKind = "text" | "textarea" | "number" | "boolean" | "enum" | "map" | "json" | "any" | "schema" | "group";

function isRecord(value: unknown): value is Record<string, unknown> {
  return Boolean(value) && typeof value === "object" && !Array.isArray(value);
}

/** An object setting with fixed, typed properties (e.g. a loop's circuit_breaker). */
export function isGroupSchema(schema: JsonSchema): boolean {
  if (schema.type !== "object" || schema.additionalProperties !== false || !isRecord(schema.properties)) return false;
  const props = Object.values(schema.properties);
  return props.length > 0 && props.every((p) => isRecord(p) && (["number", "integer", "boolean", "string"].includes(p.type as string) || Array.isArray(p.enum)));
}

const TEXTAREA_FIELDS = new Set(["system_prompt", "user_prompt", "sql", "text", "expression", "priority"]);

export function fieldKind(blockType: string, name: string, schema: JsonSchema): FieldKind {
  if (blockType === "agent" && name === "response_format") return "schema";
  if (Array.isArray(schema.enum)) return "enum";
  const type = schema.type;
  if (type === "boolean") return "boolean";
  if (type === "number" || type === "integer") return "number";
  if (type === "string") return TEXTAREA_FIELDS.has(name) ? "textarea" : "text";
  if (isGroupSchema(schema)) return "group";
  if (type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") return "map";
  if (type === "object") return "json";
  return "any";
}

export function humanize(name: string): string {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export interface FieldProps {
  blockId: string;
  name: string;
  schema: JsonSchema;
  value: unknown;
  onChange: (value: unknown) => void;
  invalid: boolean;
  inputId: string;
}

export function FieldFrame(props: {
  name: string;
  label: string;
  required: boolean;
  inputId?: string;
  errors: ValidationError[];
  /** Advice that blocks neither a save nor a run. */
  warnings?: ValidationError[];
  hint?: ReactNode;
  children: ReactNode;
}) {
  const { name, label, required, inputId, errors, warnings = [], hint, children } = props;
  return (
    <div className={`field${errors.length ? " has-error" : ""}`} data-field-wrap={name}>
      <label className="field-label" htmlFor={inputId}>
        {label}
        {required && <span className="required" title="required"> *</span>}
      </label>
      {children}
      {hint && <div className="field-hint">{hint}</div>}
      {errors.map((e, i) => (
        <div key={i} className="field-error" data-field-error={name} role="alert">
          {e.field !== name && <code>{e.field.slice(name.length + 1)}: </code>}
          {e.message}
          <AddSecretLink error={e} />
        </div>
      ))}
      {warnings.map((w, i) => (
        <div key={`w${i}`} className="field-warning" data-field-warning={name}>
          {w.message}
        </div>
      ))}
    </div>
  );
}

export function TextField({ blockId, name, value, onChange, invalid, inputId, multiline }: FieldProps & { multiline?: boolean }) {
  const text = typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  return (
    <RefInput
      id={inputId}
      blockId={blockId}
      field={name}
      value={text}
      multiline={multiline}
      rows={name === "sql" ? 8 : name === "expression" || name === "priority" ? 2 : 4}
      invalid={invalid}
      className={name === "sql" || name === "expression" || name === "priority" ? "mono" : undefined}
      onChange={(t) => onChange(t === "" ? undefined : t)}
    />
  );
}

export function NumberField({ name, schema, value, onChange, invalid, inputId }: FieldProps) {
  const { draft, setDraft, committed } = useDraft(value, (v) => (typeof v === "number" ? String(v) : ""));
  const integer = schema.type === "integer";
  return (
    <input
      id={inputId}
      type="number"
      name={name}
      data-field={name}
      className={invalid ? "input-invalid" : undefined}
      value={draft}
      step={integer ? 1 : "any"}
      min={typeof schema.minimum === "number" ? schema.minimum : undefined}
      max={typeof schema.maximum === "number" ? schema.maximum : undefined}
      placeholder={schema.default !== undefined ? `default ${String(schema.default)}` : undefined}
      onChange={(e) => {
        const text = e.target.value;
        setDraft(text);
        if (text.trim() === "") {
          committed(undefined);
          onChange(undefined);
          return;
        }
        const number = Number(text);
        if (Number.isFinite(number)) {
          committed(number);
          onChange(number);
        }
      }}
    />
  );
}

export function BooleanField({ name, schema, value, onChange, inputId }: FieldProps) {
  const checked = typeof value === "boolean" ? value : schema.default === true;
  return (
    <label className="checkbox">
      <input
        id={inputId}
        type="checkbox"
        name={name}
        data-field={name}
        checked={checked}
        onChange={(e) => onChange(e.target.checked)}
      />
      <span>{checked ? "yes" : "no"}</span>
    </label>
  );
}

export function EnumField({ name, schema, value, onChange, invalid, inputId }: FieldProps) {
  const options = (schema.enum as unknown[]).map((o) => String(o));
  const current = value === undefined || value === null ? "" : String(value);
  return (
    <select
      id={inputId}
      name={name}
      data-field={name}
      className={invalid ? "input-invalid" : undefined}
      value={current}
      onChange={(e) => onChange(e.target.value === "" ? undefined : e.target.value)}
    >
      <option value="">{schema.default !== undefined ? `default (${String(schema.default)})` : "—"}</option>
      {options.map((o) => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
      {current && !options.includes(current) && <option value={current}>{current}</option>}
    </select>
  );
}

interface Row {
  key: string;
  value: string;
}

function rowsOf(value: unknown): Row[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).map(([key, v]) => ({
    key,
    value: typeof v === "string" ? v : JSON.stringify(v),
  }));
}

/** Key/value rows for object maps (headers, query, aggregations). */
export function KeyValueField({ blockId, name, value, onChange, invalid, inputId }: FieldProps) {
  const { draft: rows, setDraft: setRows, committed } = useDraft<unknown, Row[]>(value, rowsOf);
  const example = exampleRef(useGraphStore((s) => s.scopes[blockId] ?? NO_SCOPE));
  const update = (next: Row[]) => {
    setRows(next);
    const object: Record<string, string> = {};
    for (const row of next) if (row.key.trim()) object[row.key.trim()] = row.value;
    const result = Object.keys(object).length ? object : undefined;
    committed(result);
    onChange(result);
  };
  return (
    <div className={`kv${invalid ? " input-invalid" : ""}`} data-field={name} id={inputId}>
      {rows.map((row, i) => (
        <div className="kv-row" data-kv-row={i} key={i}>
          <input
            type="text"
            className="kv-key"
            name={`${name}.${i}.key`}
            data-kv="key"
            placeholder="name"
            value={row.key}
            spellCheck={false}
            onChange={(e) => update(rows.map((r, j) => (j === i ? { ...r, key: e.target.value } : r)))}
          />
          <RefInput
            blockId={blockId}
            field={`${name}.${i}.value`}
            data-kv="value"
            className={name === "aggregations" ? "kv-value mono" : "kv-value"}
            placeholder={name === "aggregations" ? "JMESPath over results" : example ? `value or <${example}>` : "value"}
            value={row.value}
            onChange={(text) => update(rows.map((r, j) => (j === i ? { ...r, value: text } : r)))}
          />
          <button
            type="button"
            className="icon-button"
            title="Remove"
            aria-label={`Remove ${row.key || "row"}`}
            data-action="remove-row"
            onClick={() => update(rows.filter((_, j) => j !== i))}
          >
            ×
          </button>
        </div>
      ))}
      <button type="button" className="link-button" data-action="add-row" onClick={() => setRows([...rows, { key: "", value: "" }])}>
        + Add
      </button>
    </div>
  );
}

function pretty(value: unknown): string {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/**
 * Raw JSON; `strictObject` requires a JSON object (schemas), otherwise any JSON value. Text
 * that does not parse is kept (in the graph store too, under `blockId` + `draftField`, so it
 * survives the panel closing): the graph is dirty and Save refuses until it is fixed.
 */
export function JsonField({
  blockId,
  draftField,
  name,
  value,
  onChange,
  invalid,
  inputId,
  strictObject,
  rows = 6,
}: Omit<FieldProps, "blockId" | "schema"> & { blockId?: string; draftField?: string; strictObject?: boolean; rows?: number }) {
  const field = draftField ?? name;
  const { draft, setDraft, committed } = useDraft(value, pretty, () => {
    const kept = blockId ? useGraphStore.getState().fieldDrafts[draftKey(blockId, field)]?.draft : undefined;
    return typeof kept === "string" ? kept : undefined;
  });
  const problem = jsonProblem(draft, strictObject);
  useEffect(() => {
    if (!blockId) return;
    useGraphStore.getState().setFieldDraft(blockId, field, problem ? { message: problem, draft } : null);
  }, [blockId, field, problem, draft]);
  return (
    <>
      <textarea
        id={inputId}
        name={name}
        data-field={name}
        rows={rows}
        className={`mono${invalid || problem ? " input-invalid" : ""}`}
        spellCheck={false}
        value={draft}
        aria-invalid={problem ? true : undefined}
        onChange={(e) => {
          const text = e.target.value;
          setDraft(text);
          if (text.trim() === "") {
            committed(undefined);
            onChange(undefined);
          } else if (!jsonProblem(text, strictObject)) {
            const parsed = JSON.parse(text);
            committed(parsed);
            onChange(parsed);
          }
        }}
      />
      {problem && (
        <div className="field-error local" data-json-error={name} role="alert">
          {problem}. Not saved: fix it or clear the field (Save is refused meanwhile).
        </div>
      )}
    </>
  );
}

function jsonProblem(text: string, strictObject?: boolean): string | null {
  if (!text.trim()) return null;
  try {
    const value = JSON.parse(text);
    if (strictObject && (typeof value !== "object" || value === null || Array.isArray(value))) return "must be a JSON object";
    return null;
  } catch (error) {
    return `invalid JSON: ${(error as Error).message}`;
  }
}

function lenientText(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

const NO_SCOPE: ScopeEntry[] = [];

// Placeholders name what this block can really read (its own workflow's block and item names),
// never a generic `<webhook.body>` that may not exist here.
function usableScope(scope: ScopeEntry[]): ScopeEntry[] {
  return scope.filter((e) => !e.ref.startsWith("env.") && e.ref !== "loop" && !e.ref.startsWith("loop."));
}

/** A loop's Items placeholder: the first list (or untyped value) in scope, else a field of a body. */
export function itemsPlaceholder(scope: ScopeEntry[]): string {
  const usable = usableScope(scope);
  const pick = usable.find((e) => e.type === "array") ?? usable.find((e) => e.type === "any");
  if (pick) return `<${pick.ref}>`;
  const body = usable.find((e) => e.ref.endsWith(".body"));
  return body ? `<${body.ref}.items>` : "one <reference> to a list";
}

const SCALARS = new Set(["string", "integer", "number", "boolean"]);

/** A reference in this block's scope to show in an example (a field such as `lead.email`
 * first), or null when nothing is in scope. */
export function exampleRef(scope: ScopeEntry[]): string | null {
  const usable = usableScope(scope);
  const fields = usable.filter((e) => e.ref.includes("."));
  return (fields.find((e) => SCALARS.has(e.type)) ?? fields[0] ?? usable[0])?.ref ?? null;
}

/** An untyped field's placeholder: JSON built from a reference in scope. */
export function jsonPlaceholder(scope: ScopeEntry[]): string {
  const example = exampleRef(scope);
  if (!example) return "JSON, or one <reference>";
  const key = example.split(".").at(-1) ?? "value";
  return `JSON, e.g. {"${key}": "<${example}>"}, or one <reference>`;
}

/** Untyped values (`body`, `input`, loop `items`): JSON, or plain text (references) kept as a string. */
export function AnyField({ blockId, name, value, onChange, invalid, inputId }: FieldProps) {
  const { draft, setDraft, committed } = useDraft(value, lenientText);
  const scope = useGraphStore((s) => s.scopes[blockId] ?? NO_SCOPE);
  const isJson = (() => {
    if (!draft.trim()) return false;
    try {
      JSON.parse(draft);
      return true;
    } catch {
      return false;
    }
  })();
  return (
    <>
      <RefInput
        id={inputId}
        blockId={blockId}
        field={name}
        multiline
        rows={name === "items" ? 1 : 4}
        className="mono"
        invalid={invalid}
        value={draft}
        placeholder={name === "items" ? itemsPlaceholder(scope) : jsonPlaceholder(scope)}
        onChange={(text) => {
          setDraft(text);
          let next: unknown;
          if (text.trim() === "") next = undefined;
          else {
            try {
              next = JSON.parse(text);
            } catch {
              next = text;
            }
          }
          committed(next);
          onChange(next);
        }}
      />
      {draft.trim() !== "" && (
        <div className="field-hint" data-value-kind={name}>
          {isJson ? "JSON value" : "text (a single <reference> keeps its JSON type)"}
        </div>
      )}
    </>
  );
}

/**
 * An object setting with fixed properties: "enabled" (unchecked = the key is absent) and one
 * typed input per property, its default as placeholder. An enabled group is never empty (the
 * engine reads an empty object as off): enabling writes the defaults, and clearing the last
 * value puts them back. A value the group cannot show (unknown keys, not an object) is edited
 * as raw JSON.
 */
/**
 * A property kept only to read older saves (JSON Schema `deprecated`, or titled "(older name
 * of <sibling>)", e.g. the loop breaker's `min_items`, read as `min_calls`): not offered.
 */
export function isLegacyProperty(key: string, prop: JsonSchema, siblings: Record<string, JsonSchema>): boolean {
  if (prop.deprecated === true) return true;
  const title = typeof prop.title === "string" ? prop.title : "";
  const match = /\(older name of ([\w.]+)\)/i.exec(title);
  return Boolean(match && match[1] !== key && match[1] in siblings);
}

export function GroupField(props: FieldProps) {
  const { blockId, name, schema, value, onChange, invalid, inputId } = props;
  const properties = schema.properties as Record<string, JsonSchema>;
  const known = value === undefined || (isRecord(value) && Object.keys(value).every((k) => k in properties));
  if (!known) {
    return <JsonField blockId={blockId} name={name} value={value} onChange={onChange} invalid={invalid} inputId={inputId} strictObject rows={4} />;
  }
  const enabled = isRecord(value);
  const current = enabled ? (value as Record<string, unknown>) : {};
  const defaults: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(properties)) if (prop.default !== undefined) defaults[key] = prop.default;
  const setProperty = (key: string, next: unknown) => {
    const object = { ...current };
    if (next === undefined) delete object[key];
    else object[key] = next;
    onChange(Object.keys(object).length ? object : { ...defaults });
  };
  return (
    <div className={`field-group${enabled ? "" : " off"}${invalid ? " input-invalid" : ""}`} data-field-group={name}>
      <label className="checkbox">
        <input
          id={inputId}
          type="checkbox"
          name={name}
          data-field={name}
          checked={enabled}
          onChange={(e) => onChange(e.target.checked ? { ...defaults } : undefined)}
        />
        <span>{enabled ? "enabled" : "off"}</span>
      </label>
      {enabled && (
        <div className="field-group-grid">
          {Object.entries(properties)
            // A legacy property shows only while an older save still sets it (to be cleared).
            .filter(([key, prop]) => current[key] !== undefined || !isLegacyProperty(key, prop, properties))
            .map(([key, prop]) => {
            const id = `${inputId}-${key}`;
            const childProps: FieldProps = {
              blockId,
              name: `${name}.${key}`,
              schema: prop,
              value: current[key],
              invalid: false,
              inputId: id,
              onChange: (next) => setProperty(key, next),
            };
            const kind = fieldKind("", key, prop);
            return (
              <div className="field-group-row" key={key}>
                <label htmlFor={id} title={typeof prop.description === "string" ? prop.description : undefined}>
                  {typeof prop.title === "string" ? prop.title : humanize(key)}
                </label>
                {kind === "number" ? (
                  <NumberField {...childProps} />
                ) : kind === "boolean" ? (
                  <BooleanField {...childProps} />
                ) : kind === "enum" ? (
                  <EnumField {...childProps} />
                ) : (
                  <input
                    id={id}
                    type="text"
                    name={childProps.name}
                    data-field={childProps.name}
                    value={typeof current[key] === "string" ? (current[key] as string) : ""}
                    placeholder={prop.default !== undefined ? `default ${String(prop.default)}` : undefined}
                    onChange={(e) => setProperty(key, e.target.value === "" ? undefined : e.target.value)}
                  />
                )}
              </div>
            );
          })}
        </div>
      )}
    </div>
  );
}

export function useInputId(name: string): string {
  return `${useId()}-${name}`;
}
