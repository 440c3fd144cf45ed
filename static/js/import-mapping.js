// The import's column mapping: a column set to "Custom field" (activities: "Property") shows the key it will be
// kept under, which the user may rename; other columns hide it. Without JavaScript the keys of the columns already
// set that way are shown, and any custom column is kept under the key made from its header.
(function () {
  "use strict";
  document.querySelectorAll("select.import-target").forEach(function (select) {
    var box = document.getElementById(select.dataset.key);
    if (!box) { return; }
    select.addEventListener("change", function () {
      box.hidden = select.value !== select.dataset.custom;
      var row = select.closest("tr");
      if (row) {
        row.classList.toggle("unmapped", select.value === "");
        var badge = row.querySelector(".unmapped-badge");
        if (badge) { badge.hidden = select.value !== ""; }
      }
    });
  });
})();
