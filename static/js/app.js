// Tell the server the viewer's timezone once, so times are shown in it from the next page on.
(function () {
  var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (tz && document.cookie.indexOf("tz=" + encodeURIComponent(tz)) === -1) {
    document.cookie = "tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();

// Charts: a <canvas data-chart="ID"> is drawn with Chart.js from the JSON in the element with that id
// (written by the json_script template filter): {type, labels, datasets: [{label, data}]}. Runs on page load
// and on every piece of page htmx swaps in; pages that show charts load Chart.js themselves.
window.drawCharts = function (root) {
  if (!window.Chart || !root || !root.querySelectorAll) return;
  var canvases = Array.prototype.slice.call(root.querySelectorAll("canvas[data-chart]"));
  if (root.matches && root.matches("canvas[data-chart]")) canvases.push(root);
  canvases.forEach(function (canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || window.Chart.getChart(canvas)) return;
    var spec = JSON.parse(source.textContent);
    // Bars compare "now" (grey) with "after" (blue); lines lead with the main series in blue.
    var colours = spec.type === "bar" ? ["#8e9aaf", "#1e88e5"] : ["#1e88e5", "#2e7d32", "#ef6c00", "#8e9aaf"];
    var datasets = spec.datasets.map(function (dataset, index) {
      var colour = colours[index % colours.length];
      return Object.assign({backgroundColor: colour, borderColor: colour, pointRadius: 2, tension: 0.1}, dataset);
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: {labels: spec.labels, datasets: datasets},
      options: {responsive: true, maintainAspectRatio: false, animation: false,
                scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
    });
  });
};
if (window.htmx) {
  window.htmx.onLoad(window.drawCharts);
} else {
  document.addEventListener("DOMContentLoaded", function () { window.drawCharts(document); });
}

// Behaviour the templates ask for with data attributes, since the Content-Security-Policy allows no inline
// event handlers: <select data-autosubmit> submits its form on change; <form data-confirm="question?"> asks
// first; an element with data-swap-statuses="400 409" lets htmx swap in those error answers (they carry the
// message to show) instead of ignoring them.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target.matches && target.matches("[data-autosubmit]") && target.form) target.form.submit();
});
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("htmx:beforeSwap", function (event) {
  var holder = event.target.closest && event.target.closest("[data-swap-statuses]");
  if (!holder) return;
  var statuses = holder.getAttribute("data-swap-statuses").split(/\s+/);
  if (statuses.indexOf(String(event.detail.xhr.status)) !== -1) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// The header's Menu button (shown only at narrow widths) opens and closes the links; Escape closes them and
// gives focus back to the button.
document.addEventListener("click", function (event) {
  var toggle = event.target.closest && event.target.closest(".nav-toggle");
  if (!toggle) return;
  var panel = document.getElementById(toggle.getAttribute("aria-controls"));
  var open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
  panel.classList.toggle("open", open);
});
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  var toggle = document.querySelector(".nav-toggle[aria-expanded=true]");
  if (!toggle) return;
  var panel = document.getElementById(toggle.getAttribute("aria-controls"));
  if (!panel.contains(document.activeElement) && document.activeElement !== toggle) return;
  toggle.setAttribute("aria-expanded", "false");
  panel.classList.remove("open");
  toggle.focus();
});
// A combobox (<div data-combobox> holding an <input role=combobox> and its <ul role=listbox>, whose options htmx
// loads as one types): ArrowDown/ArrowUp move through the options, Enter or a click picks one (its data-value goes
// into the input, and a change event tells the form), Escape closes the list.
(function () {
  function parts(element) {
    var box = element.closest && element.closest("[data-combobox]");
    if (!box) return null;
    return {box: box, input: box.querySelector("[role=combobox]"), list: box.querySelector("[role=listbox]")};
  }
  function options(list) {
    return Array.prototype.slice.call(list.querySelectorAll("[role=option]:not([aria-disabled=true])"));
  }
  function show(p, open) {
    p.list.hidden = !open;
    p.input.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) p.input.removeAttribute("aria-activedescendant");
  }
  function activate(p, option) {
    options(p.list).forEach(function (each) { each.setAttribute("aria-selected", each === option ? "true" : "false"); });
    if (option) {
      p.input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({block: "nearest"});
    }
  }
  function pick(p, option) {
    p.input.value = option.getAttribute("data-value");
    show(p, false);
    p.input.dispatchEvent(new Event("change", {bubbles: true}));
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    var p = parts(event.target);
    if (p && event.target === p.list) show(p, p.list.children.length > 0 && document.activeElement === p.input);
  });
  document.addEventListener("keydown", function (event) {
    var p = event.target.matches && event.target.matches("[role=combobox]") ? parts(event.target) : null;
    if (!p) return;
    var all = options(p.list);
    var current = p.list.querySelector("[aria-selected=true]");
    var index = all.indexOf(current);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!all.length) return;
      event.preventDefault();
      show(p, true);
      var step = event.key === "ArrowDown" ? 1 : -1;
      activate(p, all[(index + step + all.length) % all.length] || all[0]);
    } else if (event.key === "Enter" && !p.list.hidden && current) {
      event.preventDefault();  // picking a lead does not submit the form
      pick(p, current);
    } else if (event.key === "Escape" && !p.list.hidden) {
      event.preventDefault();
      show(p, false);
    }
  });
  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest("[role=option]");
    var p = option && parts(option);
    if (p && option.getAttribute("aria-disabled") !== "true") pick(p, option);
    document.querySelectorAll("[data-combobox]").forEach(function (box) {
      var q = parts(box);
      if (q && !box.contains(event.target)) show(q, false);
    });
  });
})();

// A touch's outcome (<select data-outcomes-of="type">) offers only the outcomes of the kind chosen in its form — a
// call's, an email's, a meeting's; a note has none, and the outcome (or its [data-outcome-holder]) is hidden. Without
// scripts every group shows and the server checks that the pair fits.
(function () {
  function sync(select) {
    var kind = select.form && select.form.elements[select.getAttribute("data-outcomes-of")];
    var chosen = kind ? kind.value : "";
    var offered = false;
    Array.prototype.forEach.call(select.querySelectorAll("optgroup[data-type]"), function (group) {
      var on = group.getAttribute("data-type") === chosen;
      group.hidden = !on;
      group.disabled = !on;
      offered = offered || on;
    });
    var picked = select.options[select.selectedIndex];
    if (picked && picked.parentNode.disabled) select.value = "";
    var holder = select.closest("[data-outcome-holder]") || select;
    holder.hidden = !offered;
  }
  function syncAll(root) {
    if (!root || !root.querySelectorAll) return;
    Array.prototype.forEach.call(root.querySelectorAll("select[data-outcomes-of]"), sync);
  }
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (!form) return;
    Array.prototype.forEach.call(form.querySelectorAll("select[data-outcomes-of]"), function (select) {
      if (event.target.name === select.getAttribute("data-outcomes-of")) sync(select);
    });
  });
  if (window.htmx) {
    window.htmx.onLoad(syncAll);
  } else {
    document.addEventListener("DOMContentLoaded", function () { syncAll(document); });
  }
})();

// The leads list's selection (a <form data-bulk>): the header's box ticks every row of the page; then "Select all N
// leads that match" sets the form's scope to every lead the list's search and filters match (the server counts and
// asks before it changes them). Unticking a row goes back to the ticked rows. Actions that take ticked leads only
// ([data-ticked-only]) are switched off while all that match are selected.
(function () {
  function parts() {
    var form = document.querySelector("form[data-bulk]");
    if (!form) return null;
    return {
      form: form, scope: form.querySelector("[data-bulk-scope]"),
      page: document.querySelector("[data-select-page]"),
      rows: Array.prototype.slice.call(document.querySelectorAll("[data-select-row]")),
      banner: document.querySelector("[data-select-all]")
    };
  }
  function show(element, visible) { if (element) element.hidden = !visible; }
  function setMatching(p, matching) {
    p.scope.value = matching ? "matching" : "";
    p.form.querySelectorAll("[data-ticked-only] button").forEach(function (button) { button.disabled = matching; });
    if (!p.banner) return;
    show(p.banner.querySelector("[data-select-page-note]"), !matching);
    show(p.banner.querySelector("[data-select-matching]"), !matching);
    show(p.banner.querySelector("[data-select-matching-note]"), matching);
    show(p.banner.querySelector("[data-select-clear]"), matching);
  }
  function sync(p) {
    var all = p.rows.length > 0 && p.rows.every(function (box) { return box.checked; });
    var some = p.rows.some(function (box) { return box.checked; });
    if (p.page) { p.page.checked = all; p.page.indeterminate = some && !all; }
    if (!all) setMatching(p, false);
    show(p.banner, all);
  }
  document.addEventListener("change", function (event) {
    var p = parts();
    if (!p) return;
    if (event.target === p.page) {
      p.rows.forEach(function (box) { box.checked = p.page.checked; });
      sync(p);
    } else if (event.target.matches && event.target.matches("[data-select-row]")) {
      sync(p);
    }
  });
  document.addEventListener("click", function (event) {
    var p = parts();
    if (!p || !event.target.closest) return;
    if (event.target.closest("[data-select-matching]")) {
      setMatching(p, true);
      p.banner.querySelector("[data-select-clear]").focus();
    } else if (event.target.closest("[data-select-clear]")) {
      p.rows.forEach(function (box) { box.checked = false; });
      sync(p);
      if (p.page) p.page.focus();
    }
  });
  // Back to a page kept in the browser's cache: start from what the boxes show.
  window.addEventListener("pageshow", function () { var p = parts(); if (p) sync(p); });
})();

// The header's search box ([data-search-box]): htmx shows the top hits below it as one types. Down arrow goes from
// the box into the hits and through them, Up arrow back; Escape (or a click elsewhere) closes them.
(function () {
  function hits(box) {
    return Array.prototype.slice.call(box.querySelectorAll(".search-suggest a"));
  }
  function close(box) {
    var holder = box.querySelector(".search-suggest");
    if (holder) holder.innerHTML = "";
  }
  document.addEventListener("keydown", function (event) {
    var box = event.target.closest && event.target.closest("[data-search-box]");
    if (!box) return;
    var input = box.querySelector("input[type=search]");
    var links = hits(box);
    var index = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown" && links.length) {
      event.preventDefault();
      links[Math.min(index + 1, links.length - 1)].focus();
    } else if (event.key === "ArrowUp" && index !== -1) {
      event.preventDefault();
      (index === 0 ? input : links[index - 1]).focus();
    } else if (event.key === "Escape" && links.length) {
      event.preventDefault();
      close(box);
      input.focus();
    }
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("[data-search-box]").forEach(function (box) {
      if (!box.contains(event.target)) close(box);
    });
  });
})();

// A <details data-closes-on-escape> panel (the leads list's Columns) closes with Escape, giving focus back to its
// summary.
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  var panel = event.target.closest && event.target.closest("details[data-closes-on-escape][open]");
  if (!panel) return;
  panel.open = false;
  panel.querySelector("summary").focus();
});
