// Server calls. Every error is the server's JSON {"error": message} (or the status line) thrown as
// an Error; every state-changing request carries the page's header: the server refuses POST/DELETE
// without it (no other site's page can send it), and JSON bodies must say they are JSON.

const PAGE_HEADER = {"X-Vcpred-Request": "1"};

export async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

export const getJson = async (path) => (await api(path)).json();

export const getFloats = async (path) => new Float32Array(await (await api(path)).arrayBuffer());

export const postJson = (path, body) => api(path, {
  method: "POST", headers: {...PAGE_HEADER, "Content-Type": "application/json"}, body: JSON.stringify(body)});

export const postFile = (path, file) => api(path, {
  method: "POST", body: file, headers: {...PAGE_HEADER, "Content-Type": "application/octet-stream"}});

// Closing deletes the study's files; a failure is left to the server's idle timeout.
export const deleteStudy = (id) =>
  fetch(`/api/studies/${id}`, {method: "DELETE", headers: PAGE_HEADER}).catch(() => {});

// Leaving the page: a keepalive fetch outlives the page like sendBeacon, and can carry the header.
export const closeOnLeave = (id) =>
  fetch(`/api/studies/${id}/close`, {method: "POST", headers: PAGE_HEADER, keepalive: true}).catch(() => {});
