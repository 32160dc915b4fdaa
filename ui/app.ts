/**
 * The history page (docs/history.md, "The history page"): served at /ui/ by
 * the service itself, every figure from its QueryService, the view in the
 * URL, the read key in this tab's session storage.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import {
  forgetKey,
  keyRefused,
  messageOf,
  type Query,
  queryClient,
  storedKey,
  storeKey,
} from "./api.js";
import { askOf, fillPanel, PANELS, sectionOf } from "./panels.js";
import { type RangeName, urlOfView, type View, viewOfUrl } from "./state.js";

const controls = document.getElementById("controls") as HTMLFormElement;
const dialog = document.getElementById("key-dialog") as HTMLDialogElement;
const keyForm = document.getElementById("key-form") as HTMLFormElement;
const keyProblem = document.getElementById("key-problem") as HTMLElement;
const forget = document.getElementById("forget-key") as HTMLButtonElement;
const main = document.getElementById("panels") as HTMLElement;

const field = (name: string) =>
  controls.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement;

function showView(view: View): void {
  field("range").value = view.range;
  field("service").value = view.service;
  field("server").value = view.server;
  field("tool").value = view.tool;
}

function viewOfControls(): View {
  return {
    range: field("range").value as RangeName,
    service: field("service").value.trim(),
    server: field("server").value.trim(),
    tool: field("tool").value.trim(),
  };
}

function askForKey(problem: string): void {
  keyProblem.textContent = problem;
  forget.hidden = true;
  if (!dialog.open) dialog.showModal();
}

/** Offers the values seen as the filters' suggestions. */
async function suggest(query: Query, view: View): Promise<void> {
  const lists = [
    ["services", "service"],
    ["servers", "server_name"],
    ["tools", "tool_name"],
  ] as const;
  const start = timestampFromMs(Date.now() - 30 * 86_400_000);
  await Promise.all(
    lists.map(async ([id, dimension]) => {
      const answer = await query.top({
        eventType: "tool_execution",
        dimension,
        limit: 100,
        start,
        filters: view.service !== "" && dimension !== "service" ? { service: view.service } : {},
      });
      const list = document.getElementById(id) as HTMLDataListElement;
      list.replaceChildren(
        ...answer.rows.map((r) => {
          const option = document.createElement("option");
          option.value = r.value;
          return option;
        }),
      );
    }),
  );
}

/** The load under way: a newer one makes an older one's answers moot. */
let generation = 0;

/**
 * Shows the view of the controls. `navigation` is how the URL follows it: a
 * view the user chose is a new entry of the tab's history (Back returns to
 * the one before); the first view and one Back or Forward reached replace
 * the entry, so that Back is never caught on one.
 */
async function load(navigation: "push" | "replace"): Promise<void> {
  const key = storedKey();
  if (key === null) return askForKey("");
  forget.hidden = false;
  const view = viewOfControls();
  // A changed view is a new entry of the tab's history, so Back returns to the previous one.
  const url = urlOfView(view, new URL(window.location.href));
  if (url.href !== window.location.href) {
    if (navigation === "push") window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
  }
  const query = queryClient(key);
  const ask = askOf(query, view, Date.now());
  const mine = ++generation;
  const sections = PANELS.map((panel) => {
    const section = sectionOf(panel);
    return { panel, section };
  });
  main.replaceChildren(...sections.map((s) => s.section));
  main.setAttribute("aria-busy", "true");
  const results = await Promise.allSettled([
    ...sections.map(({ panel, section }) => fillPanel(panel, ask, section)),
    suggest(query, view),
  ]);
  if (mine !== generation) return;
  main.setAttribute("aria-busy", "false");
  const refused = results.find((r) => r.status === "rejected" && keyRefused(r.reason));
  if (refused?.status === "rejected") {
    forgetKey();
    askForKey(`That key may not read the history: ${messageOf(refused.reason)}`);
  }
}

controls.addEventListener("submit", (event) => {
  event.preventDefault();
  void load("push");
});
field("range").addEventListener("change", () => void load("push"));
keyForm.addEventListener("submit", () => {
  const input = keyForm.elements.namedItem("key") as HTMLInputElement;
  const key = input.value.trim();
  input.value = "";
  if (key === "") return;
  storeKey(key);
  void load("replace");
});
forget.addEventListener("click", () => {
  forgetKey();
  main.replaceChildren();
  askForKey("");
});
window.addEventListener("popstate", () => {
  showView(viewOfUrl(new URL(window.location.href)));
  void load("replace");
});

showView(viewOfUrl(new URL(window.location.href)));
void load("replace");
