// A small modal question over the canvas ("Delete the loop and the 2 blocks inside it?"),
// answered with the buttons or Esc (cancel). Focus starts on Cancel, the safe answer: an
// Enter or Space meant for something else never deletes.
import { useEffect, useRef } from "react";

export interface Question {
  text: string;
  confirm: string;
  answer: (ok: boolean) => void;
}

export function ConfirmDialog({ question }: { question: Question }) {
  const cancelRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    cancelRef.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        question.answer(false);
      }
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [question]);
  return (
    <div className="confirm-backdrop" onPointerDown={() => question.answer(false)}>
      <div
        className="confirm-dialog"
        role="alertdialog"
        aria-modal="true"
        aria-label={question.text}
        data-testid="confirm-dialog"
        onPointerDown={(e) => e.stopPropagation()}
      >
        <p>{question.text}</p>
        <div className="confirm-actions">
          <button ref={cancelRef} type="button" className="btn" data-action="confirm-cancel" onClick={() => question.answer(false)}>
            Cancel
          </button>
          <button type="button" className="btn danger" data-action="confirm-ok" onClick={() => question.answer(true)}>
            {question.confirm}
          </button>
        </div>
      </div>
    </div>
  );
}
