// Request body sizes as the server counts them (UTF-8 bytes), and how the run panel's tabs
// tell them when warning before a body the server would refuse (413).

/** The UTF-8 length of `text`: what it weighs in a request body. */
export function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** "812 bytes", "3.4 kB", "17.5 MB" (1 kB = 1024 bytes). */
export function byteSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * `bytes` for a body just over `limit`: exact when rounding would show both the same
 * ("10.0 MB, over the limit of 10.0 MB" would not say why).
 */
export function sizeOver(bytes: number, limit: number): string {
  return byteSize(bytes) === byteSize(limit) ? `${bytes} bytes` : byteSize(bytes);
}
