// The assignment rule form: the team picker for the team strategies, the rep picker for "A named rep". Without
// scripts both show, and the server uses the one the chosen strategy names.
(function () {
  "use strict";

  function init() {
    var strategy = document.getElementById("id_strategy");
    if (!strategy) return;
    var team = document.querySelector("[data-target=team]");
    var rep = document.querySelector("[data-target=rep]");

    function update() {
      var named = strategy.value === "rep";
      if (team) team.hidden = named;
      if (rep) rep.hidden = !named;
    }

    strategy.addEventListener("change", update);
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
