// The gallery's picture of a template's graph: an SVG of its blocks where the canvas puts
// them (loops as frames around their bodies) and the edges between them. Names are text
// nodes, never markup.
import type { TemplatePreview } from "../types";

const PAD = 20;

export function TemplatePicture({ slug, preview }: { slug: string; preview: TemplatePreview }) {
  const boxes = new Map(preview.blocks.map((b) => [b.id, b]));
  const viewBox = `${-PAD} ${-PAD} ${preview.width + 2 * PAD} ${preview.height + 2 * PAD}`;
  return (
    <svg
      className="wl-picture"
      viewBox={viewBox}
      role="img"
      aria-label={`Graph of ${preview.blocks.length} blocks`}
      data-testid={`template-picture-${slug}`}
    >
      {preview.blocks
        .filter((b) => b.type === "loop")
        .map((b) => (
          <g key={b.id} data-picture-block={b.name}>
            <rect x={b.x} y={b.y} width={b.width} height={b.height} rx={10} className="wl-picture-loop" />
            <text x={b.x + 12} y={b.y + 26} className="wl-picture-label">
              ⟳ {b.name}
            </text>
          </g>
        ))}
      {preview.edges.map((e) => {
        const from = boxes.get(e.source);
        const to = boxes.get(e.target);
        if (!from || !to) return null;
        return (
          <line
            key={`${e.source}-${e.target}`}
            x1={from.x + from.width}
            y1={from.y + (from.type === "loop" ? 40 : from.height / 2)}
            x2={to.x}
            y2={to.y + (to.type === "loop" ? 40 : to.height / 2)}
            className="wl-picture-edge"
          />
        );
      })}
      {preview.blocks
        .filter((b) => b.type !== "loop")
        .map((b) => (
          <g key={b.id} data-picture-block={b.name}>
            <rect x={b.x} y={b.y} width={b.width} height={b.height} rx={8} className={`wl-picture-block wl-picture-${b.type}`} />
            <text x={b.x + 12} y={b.y + b.height / 2 + 8} className="wl-picture-label">
              {b.name}
            </text>
          </g>
        ))}
    </svg>
  );
}
