// The terminal page of `dockersh web`: xterm.js on a websocket to the user's session.
// Output arrives as binary frames (UTF-8, decoded by xterm.js); control and input as JSON.
// After a network blip the page reconnects to the same session and asks for what it missed.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const status = document.getElementById("status");
  const term = new Terminal({ cursorBlink: true, scrollback: 5000, allowProposedApi: false });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.dockershTerm = term; // for the tests and the curious
  let ws = null, received = 0, retries = 0, ended = false;

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function connect() {
    const query = new URLSearchParams({ csrf: csrf, since: String(received),
                                        rows: String(term.rows), cols: String(term.cols) });
    ws = new WebSocket("wss://" + location.host + "/ws?" + query);
    ws.binaryType = "arraybuffer";
    ws.onopen = function () { retries = 0; status.textContent = ""; };
    ws.onmessage = function (event) {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        received += bytes.length;
        term.write(bytes);
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "offset") {
        received = message.value;
        send({ type: "resize", rows: term.rows, cols: term.cols });
      } else if (message.type === "exit") {
        ended = true;
        status.textContent = "session ended";
      } else if (message.type === "error") {
        ended = true;
        status.textContent = message.text;
      }
    };
    ws.onclose = function (event) {
      if (ended) return;
      if (event.code === 4401) { location.href = "/login"; return; }
      status.textContent = "reconnecting...";
      setTimeout(connect, Math.min(5000, 250 * Math.pow(2, retries++)));
    };
  }

  term.onData(function (data) { send({ type: "input", data: data }); });
  term.onResize(function (size) { send({ type: "resize", rows: size.rows, cols: size.cols }); });
  // Ctrl+Shift+C copies the selection (Ctrl+C stays the terminal's interrupt); pasting is the
  // browser's own (Ctrl+Shift+V, Ctrl+V, the context menu), handled by xterm.js.
  term.attachCustomKeyEventHandler(function (event) {
    if (event.type === "keydown" && event.ctrlKey && event.shiftKey && event.code === "KeyC") {
      if (navigator.clipboard) navigator.clipboard.writeText(term.getSelection());
      return false;
    }
    return true;
  });
  window.addEventListener("resize", function () { fit.fit(); });
  connect();
  term.focus();
})();
