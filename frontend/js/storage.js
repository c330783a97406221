/* The settings that outlive a visit, in localStorage (which private browsing may refuse). */

export const STORAGE_KEYS = {
  api: "scratchnet.api",
  model: "scratchnet.model",
  brush: "scratchnet.brush",
};

export function load(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** Stores the value; null or "" removes the key. */
export function save(key, value) {
  try {
    if (value === null || value === "") localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* private mode: settings just don't persist */
  }
}
