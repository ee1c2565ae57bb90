// The demo's sheet view: polls /api/state every second and redraws the active worksheet.
"use strict";

const POLL_MS = 1000;
let activeTitle = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderTabs(sheets) {
  const tabs = document.getElementById("tabs");
  tabs.replaceChildren();
  for (const sheet of sheets) {
    const tab = element("button", "tab", sheet.title);
    tab.type = "button";
    tab.dataset.sheet = sheet.title;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", String(sheet.title === activeTitle));
    if (sheet.rows.some((row) => row.new || row.changed.length)) tab.classList.add("fresh");
    tab.append(element("span", "count", String(sheet.rows.length)));
    tab.addEventListener("click", () => {
      activeTitle = sheet.title;
      poll.render();
    });
    tabs.append(tab);
  }
}

function renderGrid(sheet) {
  const grid = document.getElementById("grid");
  grid.dataset.sheet = sheet.title;
  grid.replaceChildren();
  const head = element("thead");
  const headRow = element("tr");
  headRow.append(element("th", "rownum", "1"));
  for (const header of sheet.headers) headRow.append(element("th", "", header));
  head.append(headRow);
  const body = element("tbody");
  sheet.rows.forEach((row, index) => {
    const tr = element("tr", "row");
    tr.classList.toggle("new", row.new);
    tr.classList.toggle("deleted", row.deleted);
    tr.append(element("th", "rownum", String(index + 2)));
    row.cells.forEach((text, column) => {
      const td = element("td", "", text);
      td.title = text;
      if (row.changed.includes(column) && !row.new) td.classList.add("changed");
      if (column === sheet.deleted_column && text) td.classList.add("flag");
      if (text !== "" && !isNaN(Number(text))) td.classList.add("number");
      tr.append(td);
    });
    body.append(tr);
  });
  grid.append(head, body);
  document.getElementById("empty").hidden = sheet.rows.length > 0;
}

function renderFeed(feed) {
  const list = document.getElementById("feed");
  list.replaceChildren();
  for (const entry of [...feed].reverse()) {
    const item = element("li");
    item.append(element("time", "", entry.clock), document.createTextNode(entry.text));
    list.append(item);
  }
}

function render(state) {
  if (!state.sheets.some((sheet) => sheet.title === activeTitle)) {
    activeTitle = state.sheets.length ? state.sheets[0].title : null;
  }
  document.getElementById("clock").textContent = state.clock;
  document.getElementById("phase").textContent = state.finished ? "day over" : "day in progress";
  renderTabs(state.sheets);
  const sheet = state.sheets.find((candidate) => candidate.title === activeTitle);
  if (sheet) renderGrid(sheet);
  renderFeed(state.feed);
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    poll.last = await response.json();
    document.getElementById("offline").hidden = true;
    poll.render();
  } catch (error) {
    document.getElementById("offline").hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll.render = () => {
  if (poll.last) render(poll.last);
};

poll();
