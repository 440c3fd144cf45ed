// The sequence editor: its step buttons (add, move, remove, change of type) post the form with htmx and get the
// steps section back (nurturing/_sequence_steps.html). The section names, in data-focus, the element a keyboard
// user continues from — the new step's first input, the step that took a removed one's place, the button of a
// moved step — and this moves the focus there; the server's words for a screen reader arrive in #steps-status.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSettle", function () {
    var section = document.querySelector("#sequence-steps[data-focus]");
    if (!section) return;
    var id = section.getAttribute("data-focus");
    section.removeAttribute("data-focus");
    var element = document.getElementById(id);
    if (element) element.focus();
  });
})();
