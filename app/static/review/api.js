// The page's only way to the server: same-origin /v1 paths with the key as a Bearer
// header. The key lives in this tab's sessionStorage, never in a URL or a cookie.

const STORE = "tag2mask.review.key";

export function getKey() {
  return sessionStorage.getItem(STORE);
}

export function setKey(key) {
  sessionStorage.setItem(STORE, key);
}

export function clearKey() {
  sessionStorage.removeItem(STORE);
}

// An error answer of the API, in the contract's shape {error: {code, message, detail}}.
export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function sameOrigin(path) {
  if (typeof path !== "string" || !path.startsWith("/v1/")) {
    throw new Error("the review page only calls this server's /v1 API");
  }
  const url = new URL(path, window.location.origin);
  if (url.origin !== window.location.origin) {
    throw new Error("the review page never sends its key to another origin");
  }
  return url;
}

// fetch() with the key; rejects with ApiError for any non-2xx answer.
export async function call(path, { method = "GET", json, form, signal } = {}) {
  const url = sameOrigin(path);
  const key = getKey();
  const headers = new Headers();
  if (key) headers.set("Authorization", "Bearer " + key);
  let body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let resp;
  try {
    resp = await fetch(url, {
      method, headers, body, signal,
      credentials: "omit", referrerPolicy: "no-referrer", redirect: "error",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server did not answer (" + e.message + ").", null);
  }
  if (!resp.ok) {
    // A revoked or wrong key: the page signs out (main.js listens).
    if (resp.status === 401) window.dispatchEvent(new Event("t2m:unauthorized"));
    let err = {};
    try {
      err = (await resp.json()).error || {};
    } catch (_) {
      /* not JSON: keep the status only */
    }
    throw new ApiError(resp.status, err.code || "http_" + resp.status,
      err.message || resp.statusText || "HTTP " + resp.status, err.detail);
  }
  return resp;
}

export async function getJson(path, opts) {
  return (await call(path, opts)).json();
}

export async function postJson(path, json) {
  return (await call(path, { method: "POST", json })).json();
}

export async function getBlob(path, opts) {
  return (await call(path, opts)).blob();
}

// A sentence for people: what went wrong and what to do, from an ApiError.
export function explain(e) {
  if (!(e instanceof ApiError)) return "Something went wrong in the page: " + e.message;
  switch (e.status) {
    case 401:
      return "The server did not accept this API key (" + e.message + "). Sign in again with a valid key.";
    case 403:
      return "This key may not do that (" + e.message + "). Reviewing needs an annotator or admin key.";
    case 404:
      return "Not found: " + e.message;
    case 409:
      return "This mask was superseded: a newer run or a human mask replaced it while it was open, "
        + "so nothing was saved. Reload the queue to review the newer mask. (" + e.message + ")";
    case 0:
      return e.message;
    default:
      return "The server answered " + e.status + " " + e.code + ": " + e.message;
  }
}
