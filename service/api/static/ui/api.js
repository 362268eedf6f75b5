// HTTP and the event stream. Every request carries the API key (if one is saved) as
// `Authorization: Bearer`; the stream is read with fetch rather than EventSource, which cannot
// send headers, and resumes with Last-Event-ID after a dropped connection.
"use strict";

const Api = (() => {
  const KEY = "needle.apiKey";

  function apiKey() { return localStorage.getItem(KEY) || ""; }
  function setApiKey(value) {
    if (value) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY);
  }
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (apiKey()) h["Authorization"] = "Bearer " + apiKey();
    return h;
  }

  async function request(method, path, body) {
    const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!response.ok) {
      const detail = data && data.detail !== undefined ? data.detail : text;
      const error = new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // Download with the key (a plain link could not send it): fetch, then save the blob.
  async function download(path, filename) {
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url; link.download = filename;
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // Follow /v1/jobs/{id}/events from after `cursor`; handlers: status(job), metric(point),
  // end(job), error(err). Returns a function that stops following.
  function follow(jobId, cursor, handlers) {
    const controller = new AbortController();
    let lastId = cursor, ended = false;
    async function connect() {
      while (!ended && !controller.signal.aborted) {
        try {
          const response = await fetch(`/v1/jobs/${jobId}/events?after=${cursor}`, {
            headers: headers(lastId > cursor ? { "Last-Event-ID": String(lastId) } : {}),
            signal: controller.signal,
          });
          if (!response.ok) throw Object.assign(new Error(`${response.status}`), { status: response.status });
          await readEvents(response.body, (event) => {
            if (event.id !== null) lastId = Number(event.id);
            const data = JSON.parse(event.data);
            if (event.event === "end") ended = true;
            const handler = handlers[event.event];
            if (handler) handler(data);
          });
        } catch (err) {
          if (controller.signal.aborted) return;
          if (handlers.error) handlers.error(err);
          if (err.status === 404 || err.status === 401 || err.status === 403) return;
        }
        if (!ended) await new Promise((r) => setTimeout(r, 2000));  // then resume after lastId
      }
    }
    connect();
    return () => controller.abort();
  }

  // The text/event-stream rules: fields until a blank line; ':' lines are comments.
  async function readEvents(body, dispatch) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", event = "message", data = [], id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer[newline] === "\r" ? 2 : 1));
        if (line === "") {
          if (data.length) dispatch({ event, data: data.join("\n"), id });
          event = "message"; data = []; id = null;
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
          else if (field === "id") id = val;
        }
      }
    }
  }

  return { apiKey, setApiKey, request, download, follow };
})();
