// floatseat's waiting room: ask every few seconds; off to the product once the seat is ours.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("waiting-config").textContent);
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = String(text); };
  const fmtWait = (s) => (s === null ? "unknown" : s < 60 ? s + " s" :
    (s >= 3600 ? Math.floor(s / 3600) + " h " : "") + Math.floor((s % 3600) / 60) + " min");
  const check = () =>
    fetch(config.statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .then((s) => {
        if (s && s.redirect_to) {
          window.location.replace(s.redirect_to);
          return;
        }
        if (s) {
          set("position", s.position ?? "–");
          set("queue-length", s.queue_length);
          set("wait", fmtWait(s.estimated_wait_s));
          document.getElementById("state").dataset.state = s.state;
        }
        setTimeout(check, config.pollMs);
      }, () => setTimeout(check, config.pollMs));
  setTimeout(check, config.pollMs);
})();
