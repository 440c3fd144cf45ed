// The segment builder: rows of lead-field, behaviour and list conditions, in all/any groups, written as the
// definition JSON into the form's textarea (#id_definition) whenever they change; the live count under the
// builder (#segment-count, where the page has one) posts that textarea (htmx) a moment after the last change.
// Segments and assignment rules use it alike. The server renders every row; this file
// only copies blank rows from <template>s, removes rows, hides what does not apply and serialises.
// Other pages reuse it for a condition of their own (a sequence's exit condition): the [data-segment-builder]
// element may name its output input (data-output, default id_definition), its live count (data-counter, default
// segment-count) and its settings (data-config, default segment-builder-config). A live count marked
// data-builder-count shows its 400 answers too, and one with data-definition-from="ID" posts that input's value
// as `definition` (what the count view reads), whatever the input is called.
(function () {
  "use strict";

  // htmx leaves 4xx answers unswapped, but a refused definition comes back as a 400 that lists its problems,
  // and the count box must show them.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (event.detail.xhr.status === 400 && target &&
        (target.id === "segment-count" || target.hasAttribute("data-builder-count"))) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:configRequest", function (event) {
    var from = event.detail.elt && event.detail.elt.getAttribute && event.detail.elt.getAttribute("data-definition-from");
    var output = from && document.getElementById(from);
    if (output) event.detail.parameters.definition = output.value;
  });

  // "Select every lead on this page" on the segment page.
  document.addEventListener("change", function (event) {
    var all = event.target;
    if (!all.matches || !all.matches("[data-select-all]") || !all.form) return;
    Array.prototype.forEach.call(all.form.querySelectorAll("input[type=checkbox][name=lead]"), function (box) {
      box.checked = all.checked;
    });
  });

  var TRUE_WORDS = ["yes", "true", "y", "1", "on"];
  var FALSE_WORDS = ["no", "false", "n", "0", "off"];
  var COMPARISONS = ["gt", "gte", "lt", "lte"];

  function children(element, selector) {
    return Array.prototype.filter.call(element.children, function (child) { return child.matches(selector); });
  }

  function rowsOf(group) {
    var list = children(group, "[data-rows]")[0];
    return list ? children(list, "[data-row]") : [];
  }

  function input(row, key) {
    return row.querySelector("[data-key=" + key + "]");
  }

  function text(row, key) {
    var element = input(row, key);
    return element ? element.value.trim() : "";
  }

  function fieldKind(row, config) {
    var select = input(row, "field");
    return select && select.value ? config.fieldKinds[select.value] || "" : "";
  }

  function number(value) {
    return /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  }

  function scalar(kind, value) {
    if (kind === "number") return number(value);
    if (kind === "owner") return /^\d+$/.test(value) ? parseInt(value, 10) : value;
    if (kind === "bool") {
      var lowered = value.toLowerCase();
      if (TRUE_WORDS.indexOf(lowered) !== -1) return true;
      if (FALSE_WORDS.indexOf(lowered) !== -1) return false;
    }
    return value;
  }

  function split(value) {
    return value.split(",").map(function (item) { return item.trim(); }).filter(Boolean);
  }

  // The typed value a condition needs from what was typed; undefined when there is none. Wrong types are
  // passed on as typed, so the server names the problem.
  function parseValue(kind, op, value, config) {
    if (config.noValueOps.indexOf(op) !== -1 || value === "") return undefined;
    if (op.indexOf("within") === 0) return number(value);
    if (op === "in" || op === "not_in" || op === "between") {
      var itemKind = op === "between" ? (kind === "date" ? "date" : "number") : (kind === "json" ? "text" : kind);
      return split(value).map(function (item) { return scalar(itemKind, item); });
    }
    if ((op === "contains" || op === "starts_with") && (kind === "text" || kind === "json") &&
        value.indexOf(",") !== -1) {
      return split(value);
    }
    if (COMPARISONS.indexOf(op) !== -1 && kind !== "date") return number(value);
    return scalar(kind, value);
  }

  function placeholder(kind, op) {
    if (op === "in" || op === "not_in") return "one, another, …";
    if (op === "between") return kind === "date" ? "2026-01-01, 2026-03-31" : "low, high";
    if (op && op.indexOf("within") === 0) return "days, e.g. 30";
    if (kind === "date") return "2026-01-31";
    if (kind === "bool") return "yes or no";
    if (kind === "number") return "a number";
    if (kind === "owner") return "a user id";
    if (op === "contains" || op === "starts_with") return "text (several: comma-separated)";
    return "";
  }

  // A row as a condition, or null while it is blank (nothing chosen yet), which the definition leaves out.
  function serialiseRow(row, path, config) {
    var type = row.dataset.row;
    if (type === "group") {
      var group = row.querySelector("[data-group]");
      var nested = serialiseGroup(group, path + ".", config);
      return nested[Object.keys(nested)[0]].length ? nested : null;
    }
    if (type === "field") {
      var field = text(row, "field");
      if (!field) return null;
      if (field === "__custom__") field = "custom_fields." + text(row, "custom_key");
      var op = text(row, "op");
      var condition = {field: field, op: op};
      var value = parseValue(fieldKind(row, config), op, text(row, "value"), config);
      if (value !== undefined) condition.value = value;
      return condition;
    }
    if (type === "activity") {
      var activity = text(row, "activity");
      if (!activity) return null;
      var behaviour = {activity: activity};
      var property = text(row, "property"), propertyOp = text(row, "op"), propertyValue = text(row, "value");
      if (property || propertyOp || propertyValue) {
        behaviour.property = property;
        behaviour.op = propertyOp;
        var parsed = parseValue("json", propertyOp, propertyValue, config);
        if (parsed !== undefined) behaviour.value = parsed;
      }
      var times = text(row, "min_count"), days = text(row, "within_days");
      if (times && times !== "1") behaviour.min_count = number(times);
      if (days) behaviour.within_days = number(days);
      return behaviour;
    }
    if (type === "list") {
      var list = text(row, "list");
      return list ? {list: list, member: text(row, "member") !== "false"} : null;
    }
    if (row.dataset.kind) {  // membership of another app's object: {"campaign": ID, "member": bool, "status"?}
      var picked = text(row, "value");
      if (!picked) return null;
      var membership = {};
      membership[row.dataset.kind] = picked;
      membership.member = text(row, "member") !== "false";
      var status = text(row, "status");
      if (status && membership.member) membership.status = status;
      return membership;
    }
    return null;
  }

  // A group as {"all": [...]} or {"any": [...]}; each row that takes part is marked with its path (all.2.any.0),
  // which the server's messages name.
  function serialiseGroup(group, prefix, config) {
    var combinator = group.querySelector("[data-combinator]").value === "any" ? "any" : "all";
    var items = [];
    rowsOf(group).forEach(function (row) {
      var path = prefix + combinator + "." + items.length;
      var item = serialiseRow(row, path, config);
      if (item) {
        row.dataset.path = path;
        items.push(item);
      } else {
        delete row.dataset.path;
      }
    });
    var definition = {};
    definition[combinator] = items;
    return definition;
  }

  function depthOf(group) {
    var depth = 0;
    for (var node = group; node; node = node.parentElement && node.parentElement.closest("[data-group]")) depth++;
    return depth;
  }

  function refreshRow(row, config) {
    var type = row.dataset.row;
    var op = input(row, "op");
    if (type === "field") {
      var kind = fieldKind(row, config);
      var allowed = kind ? config.opsByKind[kind] : null;
      Array.prototype.forEach.call(op.options, function (option) {
        var off = !!(option.value && allowed && allowed.indexOf(option.value) === -1);
        option.hidden = option.disabled = off;
      });
      if (op.selectedIndex > 0 && op.options[op.selectedIndex].disabled) op.value = "";
      var field = input(row, "field").value;
      row.querySelector("[data-custom-key]").hidden = field !== "__custom__";
      var box = input(row, "value");
      if (document.getElementById("seg-values-" + field)) box.setAttribute("list", "seg-values-" + field);
      else box.removeAttribute("list");
      box.placeholder = placeholder(kind, op.value);
    }
    if (type === "field" || type === "activity") {
      row.querySelector("[data-value-box]").hidden = config.noValueOps.indexOf(op.value) !== -1;
    }
    if (type === "group") {
      var group = row.querySelector("[data-group]");
      var addGroup = group.querySelector(":scope > .seg-add [data-add=group]");
      if (addGroup) addGroup.hidden = depthOf(group) >= config.maxDepth;
    }
  }

  function markProblems(root, counter) {
    Array.prototype.forEach.call(root.querySelectorAll("[aria-invalid]"), function (element) {
      element.removeAttribute("aria-invalid");
    });
    Array.prototype.forEach.call(root.querySelectorAll(".seg-invalid"), function (element) {
      element.classList.remove("seg-invalid");
    });
    var rows = Array.prototype.slice.call(root.querySelectorAll("[data-path]"));
    Array.prototype.forEach.call(counter.querySelectorAll("[data-error-path]"), function (problem) {
      var path = problem.dataset.errorPath, best = null;
      rows.forEach(function (row) {
        var own = row.dataset.path;
        if ((path === own || path.indexOf(own + ".") === 0) && (!best || own.length > best.dataset.path.length)) {
          best = row;
        }
      });
      if (!best) return;
      best.classList.add("seg-invalid");
      var key = path.slice(best.dataset.path.length + 1).split(".")[0];
      var culprit = key && best.dataset.row !== "group" ? input(best, key) : null;
      if (culprit) culprit.setAttribute("aria-invalid", "true");
    });
  }

  function init() {
    var root = document.querySelector("[data-segment-builder]");
    if (!root) return;
    var output = document.getElementById(root.dataset.output || "id_definition");
    var counter = document.getElementById(root.dataset.counter || "segment-count");
    var source = document.getElementById(root.dataset.config || "segment-builder-config");
    if (!output || !source) return;
    var config = JSON.parse(source.textContent);
    var top = root.querySelector("[data-group]");

    function count() {
      if (counter && window.htmx) window.htmx.trigger(counter, "segment-changed");
    }

    function changed() {
      output.value = JSON.stringify(serialiseGroup(top, "", config), null, 2);
      count();
    }

    function refreshAll(element) {
      var rows = Array.prototype.slice.call(element.querySelectorAll("[data-row]"));
      if (element.matches("[data-row]")) rows.unshift(element);
      rows.forEach(function (row) { refreshRow(row, config); });
    }

    function addRow(group, type) {
      var template = document.getElementById("seg-template-" + type);
      var row = template.content.firstElementChild.cloneNode(true);
      children(group, "[data-rows]")[0].appendChild(row);
      if (type === "group") addRow(row.querySelector("[data-group]"), "field");
      refreshAll(row);
      return row;
    }

    root.addEventListener("click", function (event) {
      var add = event.target.closest("[data-add]");
      var remove = event.target.closest("[data-remove]");
      if (add) {
        var row = addRow(add.closest("[data-group]"), add.dataset.add);
        var first = row.querySelector("select, input");
        if (first) first.focus();
        changed();
      } else if (remove) {
        var gone = remove.closest("[data-row]");
        var group = gone.parentElement.closest("[data-group]");
        gone.remove();
        var next = group.querySelector(":scope > .seg-add button");
        if (next) next.focus();
        changed();
      }
    });

    function edited(event) {
      var row = event.target.closest("[data-row]");
      if (row) refreshRow(row, config);
      changed();
    }
    root.addEventListener("change", edited);
    root.addEventListener("input", edited);
    output.addEventListener("input", count);  // the JSON box is what gets counted (and saved)
    if (counter) counter.addEventListener("htmx:afterSwap", function () { markProblems(root, counter); });

    refreshAll(root);
    serialiseGroup(top, "", config);  // marks rows with their paths; the JSON box keeps the text it came with
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
