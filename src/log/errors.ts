/**
 * Errors as log fields: name, message, code and the cause chain, with a long message clipped in
 * the middle (knex puts a failed statement's SQL before the database's reason in its error's
 * message, and so in the stack).
 */

/** a cause chain may loop; a record follows this many links */
const MAX_CAUSES = 5;
const MAX_ERROR_TEXT = 2000;

function clip(text: string): string {
  if (text.length <= MAX_ERROR_TEXT) return text;
  const half = MAX_ERROR_TEXT / 2;
  return `${text.slice(0, half - 1)}…${text.slice(-half)}`;
}

/** An Error as plain JSON (the stack on the outermost only); anything else as it is. */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: clip(err.message) };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (depth === 0 && err.stack !== undefined) {
    // the message, however long, then the frames
    const frames = err.stack.indexOf('\n    at ');
    out.stack =
      frames < 0 ? clip(err.stack) : clip(err.stack.slice(0, frames)) + err.stack.slice(frames);
  }
  if (err.cause !== undefined && depth < MAX_CAUSES) {
    out.cause = serializeError(err.cause, depth + 1);
  }
  return out;
}
