// The live events page: one EventSource on the console's own stream; each
// event is shown with textContent only (never as HTML).
"use strict";
(function () {
  var list = document.getElementById("events");
  var state = document.getElementById("stream-state");
  if (!list || !state) { return; }
  var source = new EventSource("/console/events/stream");
  source.onopen = function () { state.textContent = "connected"; state.setAttribute("data-state", "open"); };
  source.onerror = function () { state.textContent = "reconnecting…"; state.setAttribute("data-state", "retrying"); };
  source.addEventListener("lifecycle", function (e) {
    var msg;
    try { msg = JSON.parse(e.data); } catch (err) { return; }
    var ev = msg.event || {};
    var li = document.createElement("li");
    var type = document.createElement("span");
    type.className = "type";
    type.textContent = ev.type || msg.subject;
    li.appendChild(type);
    var parts = [];
    if (ev.occurred_at) { parts.push(ev.occurred_at); }
    if (ev.provider) { parts.push("provider " + ev.provider); }
    if (ev.workspace_id) { parts.push("workspace " + ev.workspace_id); }
    if (ev.connection_id) { parts.push("connection " + ev.connection_id); }
    if (ev.reason && ev.reason.code) { parts.push("reason " + ev.reason.code); }
    var detail = document.createElement("div");
    detail.className = "muted";
    detail.textContent = parts.join(" · ");
    li.appendChild(detail);
    if (ev.connection_id) { li.setAttribute("data-connection", ev.connection_id); }
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 200) { list.removeChild(list.lastChild); }
  });
}());
