// Drag and drop for the flatplan: a progressive enhancement. Without this script the
// up/down buttons do the same. After a drop the new order is posted to the server (with
// the CSRF token of the page); on success the page reloads to show the new totals.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table.flatplan[data-order-url]");
    if (!table) { return; }
    var body = table.querySelector("tbody");
    var rows = body.querySelectorAll("tr[draggable='true']");
    if (!rows.length) { return; }
    var tip = document.querySelector(".js-only");
    if (tip) { tip.hidden = false; }
    var tokenInput = document.querySelector("input[name='csrf_token']");
    var dragged = null;

    function clearTargets() {
      body.querySelectorAll(".drop-target").forEach(function (r) { r.classList.remove("drop-target"); });
    }

    rows.forEach(function (row) {
      row.addEventListener("dragstart", function (event) {
        dragged = row;
        row.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", row.dataset.slotId);
      });
      row.addEventListener("dragend", function () {
        row.classList.remove("dragging");
        clearTargets();
      });
      row.addEventListener("dragover", function (event) {
        if (!dragged || dragged === row) { return; }
        event.preventDefault();
        clearTargets();
        row.classList.add("drop-target");
      });
      row.addEventListener("drop", function (event) {
        event.preventDefault();
        if (!dragged || dragged === row) { return; }
        body.insertBefore(dragged, row);
        clearTargets();
        save();
      });
    });

    function save() {
      var order = Array.prototype.map.call(body.querySelectorAll("tr[data-slot-id]"), function (r) {
        return r.dataset.slotId;
      }).join(",");
      var data = new URLSearchParams();
      data.set("order", order);
      if (tokenInput) { data.set("csrf_token", tokenInput.value); }
      fetch(table.dataset.orderUrl, {
        method: "POST",
        headers: { "Accept": "application/json" },
        body: data,
        credentials: "same-origin"
      }).then(function () { window.location.reload(); });
    }
  });
})();
