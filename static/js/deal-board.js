// The pipeline board: drag a card onto another column to move the deal. The drop fills in the card's own move form
// (its stage picker, with the CSRF token and the stage the deal was seen in) and submits it, so a drag and the
// keyboard's "pick a stage, press Move" are the same request. A move that needs a reason (to Lost, or a won or
// lost deal back to an open stage) stops at the card's reason box instead, for the mover to type it and press Move.
(function () {
  "use strict";

  function init() {
    var board = document.querySelector("[data-board]");
    if (!board) return;
    var dragged = null;

    board.addEventListener("dragstart", function (event) {
      var card = event.target.closest && event.target.closest(".deal-card");
      if (!card) return;
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-deal"));
    });
    board.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
      board.querySelectorAll(".drop-target").forEach(function (column) { column.classList.remove("drop-target"); });
    });
    board.addEventListener("dragover", function (event) {
      var column = event.target.closest && event.target.closest(".board-column");
      if (!column || !dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      board.querySelectorAll(".drop-target").forEach(function (other) {
        if (other !== column) other.classList.remove("drop-target");
      });
      column.classList.add("drop-target");
    });
    board.addEventListener("drop", function (event) {
      var column = event.target.closest && event.target.closest(".board-column");
      if (!column || !dragged) return;
      event.preventDefault();
      var card = dragged;
      var stage = column.getAttribute("data-stage");
      column.classList.remove("drop-target");
      if (stage === card.getAttribute("data-stage")) return;
      var form = card.querySelector(".move-form");
      form.querySelector("select[name=stage]").value = stage;
      var kind = column.getAttribute("data-stage-kind");
      var closed = card.getAttribute("data-status") !== "open";
      var reason = form.querySelector("input[name=reason]");
      if (!reason.value.trim() && (kind === "lost" || (closed && kind === "open"))) {
        reason.required = true;
        reason.placeholder = kind === "lost" ? "Why was it lost? Then press Move" : "Why reopen it? Then press Move";
        reason.focus();
        return;
      }
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
