// The selected block's settings, generated from its config_schema, with each field's
// validation errors under it and the reference picker in text fields.
import { useEffect, useRef, useState } from "react";
import { BlockIcon } from "../nodes/icons";
import { draftKey, fieldErrors, isNote, useGraphStore } from "../store/graphStore";
import type { JsonSchema, ValidationError } from "../types";
import {
  AnyField,
  BooleanField,
  EnumField,
  FieldFrame,
  GroupField,
  JsonField,
  KeyValueField,
  NumberField,
  TextField,
  fieldKind,
  humanize,
  type FieldProps,
} from "./fields";
import { BlockTest } from "./BlockTest";
import { focusField, takeFieldFocus, useFieldFocus } from "./fieldFocus";
import { usePendingEdit } from "./pendingEdits";
import { SchedulePreview } from "./SchedulePreview";
import { SchemaBuilder } from "./SchemaBuilder";

const NO_ERRORS: ValidationError[] = [];

/** `workflowId`: the saved workflow, for testing the selected block (none: no test section). */
export function ConfigPanel({ workflowId }: { workflowId?: number } = {}) {
  const selectedId = useGraphStore((s) => s.selectedId);
  const exists = useGraphStore((s) => Boolean(s.selectedId && s.nodes.some((n) => n.id === s.selectedId && !isNote(n))));
  if (!selectedId || !exists) {
    return (
      <aside className="config-panel empty" data-testid="config-panel">
        <div className="panel-title">Settings</div>
        <p className="muted">Select a block to edit its settings. Type &lt; in a text field to insert a reference.</p>
      </aside>
    );
  }
  return <BlockSettings key={selectedId} blockId={selectedId} workflowId={workflowId} />;
}

function BlockSettings({ blockId, workflowId }: { blockId: string; workflowId?: number }) {
  // Data and parent only: a drag (new position) does not re-render the panel.
  const data = useGraphStore((s) => s.nodes.find((n) => n.id === blockId)?.data);
  const parentId = useGraphStore((s) => s.nodes.find((n) => n.id === blockId)?.parentId);
  const parentName = useGraphStore((s) => (parentId ? s.nodes.find((n) => n.id === parentId)?.data.name : undefined));
  const entry = useGraphStore((s) => (data ? s.catalogue[data.blockType] : undefined));
  const errors = useGraphStore((s) => s.errorsByBlock[blockId] ?? NO_ERRORS);
  const warnings = useGraphStore((s) => s.warningsByBlock[blockId] ?? NO_ERRORS);
  // A problem link asked to show one of this block's fields: scroll to it and focus it.
  const panelRef = useRef<HTMLElement>(null);
  const focusRequest = useFieldFocus((s) => (s.request?.blockId === blockId ? s.request : null));
  useEffect(() => {
    if (!focusRequest || !panelRef.current) return;
    const request = takeFieldFocus(blockId);
    if (request) focusField(panelRef.current, request.field);
  }, [focusRequest, blockId]);
  if (!data) return null;
  const node = { data };
  const schema = (entry?.config_schema ?? {}) as JsonSchema;
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const fieldNames = Object.keys(properties);
  const general = errors.filter((e) => e.field !== "name" && !fieldNames.some((f) => fieldErrors([e], f).length));

  return (
    <aside ref={panelRef} className="config-panel" data-testid="config-panel" data-selected-block={blockId}>
      <div className="config-head">
        <span className={`palette-icon type-${node.data.blockType}`}>
          <BlockIcon name={entry?.icon ?? "box"} size={16} />
        </span>
        <div className="config-head-text">
          <div className="config-type">{entry?.label ?? node.data.blockType}</div>
          <div className="muted small">
            {entry?.description}
            {parentName && (
              <>
                {" "}
                Inside loop <code>{parentName}</code>.
              </>
            )}
          </div>
        </div>
        <button
          type="button"
          className="icon-button danger"
          data-action="delete-block"
          title="Delete block"
          aria-label="Delete block"
          onClick={() => useGraphStore.getState().deleteElements([blockId])}
        >
          ×
        </button>
      </div>
      {general.length > 0 && (
        <div className="general-errors">
          {general.map((e, i) => (
            <div key={i} className="field-error" data-field-error={e.field} role="alert">
              <code>{e.field}</code>: {e.message}
            </div>
          ))}
        </div>
      )}
      <NameField blockId={blockId} name={node.data.name} errors={fieldErrors(errors, "name")} />
      {fieldNames.map((field) => (
        <ConfigField
          key={`${blockId}:${field}`}
          blockId={blockId}
          blockType={node.data.blockType}
          name={field}
          schema={properties[field]}
          required={required.has(field)}
          value={node.data.config[field]}
          errors={fieldErrors(errors, field)}
          warnings={fieldErrors(warnings, field)}
        />
      ))}
      {Object.keys(node.data.config)
        .filter((k) => !(k in properties))
        .map((field) => (
          <ConfigField
            key={`${blockId}:${field}`}
            blockId={blockId}
            blockType={node.data.blockType}
            name={field}
            schema={{}}
            required={false}
            value={node.data.config[field]}
            errors={fieldErrors(errors, field)}
          />
        ))}
      {node.data.blockType === "schedule" && <SchedulePreview config={node.data.config} />}
      {workflowId !== undefined && <BlockTest workflowId={workflowId} blockId={blockId} />}
    </aside>
  );
}

function NameField({ blockId, name, errors }: { blockId: string; name: string; errors: ValidationError[] }) {
  // A refused name stays typed (and keeps Save from saving) when the panel shows another block.
  const kept = () => useGraphStore.getState().fieldDrafts[draftKey(blockId, "name")];
  const [draft, setDraft] = useState(() => (kept()?.draft as string | undefined) ?? name);
  const [problem, setProblem] = useState<string | null>(() => kept()?.message ?? null);
  const shownName = useRef(name);
  useEffect(() => {
    // Follows renames from elsewhere (undo, a merge); a kept draft survives the mount.
    if (shownName.current === name) return;
    shownName.current = name;
    setDraft(name);
  }, [name]);
  const commit = () => {
    const store = useGraphStore.getState();
    const error = draft.trim() === name ? null : store.rename(blockId, draft);
    setProblem(error);
    store.setFieldDraft(blockId, "name", error ? { message: error, draft } : null);
  };
  // Save while the name is being typed: apply it (or refuse the save with its error shown).
  usePendingEdit(commit);
  const shown = problem ? [{ block_id: blockId, block: name, field: "name", message: problem }, ...errors] : errors;
  return (
    <FieldFrame name="name" label="Name" required inputId={`name-${blockId}`} errors={shown} hint={<>Referenced as <code>{`<${name}.…>`}</code></>}>
      <input
        id={`name-${blockId}`}
        type="text"
        name="name"
        data-field="name"
        className={`mono${shown.length ? " input-invalid" : ""}`}
        spellCheck={false}
        value={draft}
        onChange={(e) => {
          setDraft(e.target.value);
          setProblem(null);
        }}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit();
          if (e.key === "Escape") {
            setDraft(name);
            setProblem(null);
            useGraphStore.getState().setFieldDraft(blockId, "name", null);
          }
        }}
      />
    </FieldFrame>
  );
}

function ConfigField(props: {
  blockId: string;
  blockType: string;
  name: string;
  schema: JsonSchema;
  required: boolean;
  value: unknown;
  errors: ValidationError[];
  warnings?: ValidationError[];
}) {
  const { blockId, blockType, name, schema, required, value, errors, warnings } = props;
  const kind = fieldKind(blockType, name, schema);
  const inputId = `field-${blockId}-${name}`;
  const label = typeof schema.title === "string" ? schema.title : humanize(name);
  const fieldProps: FieldProps = {
    blockId,
    name,
    schema,
    value,
    invalid: errors.length > 0,
    inputId,
    onChange: (next) => useGraphStore.getState().updateConfig(blockId, name, next),
  };
  let control;
  switch (kind) {
    case "text":
      control = <TextField {...fieldProps} />;
      break;
    case "textarea":
      control = <TextField {...fieldProps} multiline />;
      break;
    case "number":
      control = <NumberField {...fieldProps} />;
      break;
    case "boolean":
      control = <BooleanField {...fieldProps} />;
      break;
    case "enum":
      control = <EnumField {...fieldProps} />;
      break;
    case "map":
      control = <KeyValueField {...fieldProps} />;
      break;
    case "json":
      control = <JsonField {...fieldProps} strictObject rows={8} />;
      break;
    case "schema":
      control = (
        <SchemaBuilder
          blockId={blockId}
          name={name}
          value={value}
          onChange={fieldProps.onChange}
          invalid={fieldProps.invalid}
          inputId={inputId}
        />
      );
      break;
    case "group":
      control = <GroupField {...fieldProps} />;
      break;
    default:
      control = <AnyField {...fieldProps} />;
  }
  return (
    <FieldFrame name={name} label={label} required={required} inputId={inputId} errors={errors} warnings={warnings}>
      {control}
    </FieldFrame>
  );
}
