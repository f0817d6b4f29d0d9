// The lobby: who you are (a display name on a --dev server, else an access token) and which call.
import { h } from "./dom.js";
import { CALL_TYPES, DEFAULT_CALL_TYPE, isValidId, randomCallId } from "./session.js";

const NAME_MAX = 64;

/**
 * Render the lobby into `root`.
 * options: `dev` (bool), `call` ({type, id} from a shared link, or null), `name`, `token`,
 * `error` (text shown at once), `version`, `onJoin({name, token, type, id})` (a promise).
 * Returns `{ showError(text, field?), setBusy(bool) }`.
 */
export function renderLobby(root, options) {
  const { dev, call, onJoin } = options;
  const fields = {};
  const errors = {};

  const formError = h("p", { class: "form-error", id: "lobby-error", role: "alert" });
  const joinButton = h("button", { type: "submit", class: "btn btn-primary btn-block" }, "Join");

  function field(key, label, control, hint) {
    const controlId = `lobby-${key}`;
    const errorId = `${controlId}-error`;
    const hintId = hint ? `${controlId}-hint` : null;
    control.id = controlId;
    control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
    fields[key] = control;
    errors[key] = h("p", { class: "field-error", id: errorId });
    return h(
      "div",
      { class: "field" },
      h("label", { for: controlId, text: label }),
      control,
      hint ? h("p", { class: "field-hint", id: hintId, text: hint }) : null,
      errors[key],
    );
  }

  const identityField = dev
    ? field(
        "name",
        "Display name",
        h("input", {
          type: "text",
          autocomplete: "nickname",
          maxlength: NAME_MAX,
          value: options.name || "",
          spellcheck: "false",
        }),
      )
    : field(
        "token",
        "Access token",
        h("textarea", {
          rows: 3,
          autocomplete: "off",
          spellcheck: "false",
          class: "mono",
          value: options.token || "",
        }),
        "A user token from your Podium administrator (podium token).",
      );

  let callFields;
  if (call) {
    callFields = h(
      "div",
      { class: "lobby-call" },
      h("p", { class: "lobby-call-label", text: "You are joining" }),
      h("p", { class: "lobby-call-id" }, h("span", { class: "mono", text: call.id })),
      h("p", { class: "lobby-call-type", text: `Call type: ${call.type}` }),
      h("a", { href: "/", class: "link" }, "Join a different call"),
    );
  } else {
    const typeSelect = h(
      "select",
      {},
      CALL_TYPES.map((type) =>
        h("option", { value: type, selected: type === DEFAULT_CALL_TYPE }, type),
      ),
    );
    typeSelect.value = DEFAULT_CALL_TYPE;
    const idInput = h("input", {
      type: "text",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: 64,
      class: "mono",
      value: randomCallId(),
    });
    callFields = h(
      "div",
      { class: "lobby-call-fields" },
      field("type", "Call type", typeSelect),
      h(
        "div",
        { class: "field-row" },
        field("id", "Call ID", idInput, "1–64 letters, digits, _ or -. Share it to invite others."),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-quiet",
            onclick: () => {
              idInput.value = randomCallId();
              clearErrors();
              idInput.focus();
            },
          },
          "New ID",
        ),
      ),
    );
  }

  const form = h(
    "form",
    { class: "lobby-form", novalidate: true, "aria-labelledby": "lobby-title", onsubmit: submit },
    formError,
    identityField,
    callFields,
    joinButton,
  );

  const card = h(
    "section",
    { class: "card lobby", "aria-labelledby": "lobby-title" },
    h("h1", { id: "lobby-title", text: call ? "Join the call" : "Start or join a call" }),
    h(
      "p",
      { class: "lede" },
      dev
        ? call
          ? "Pick the name others will see."
          : "Pick a name and a call. The first person in a new call becomes its host."
        : "Paste your access token to join.",
    ),
    form,
    options.version
      ? h(
          "p",
          { class: "server-note" },
          `Podium ${options.version}${dev ? " · development server" : ""}`,
        )
      : null,
  );
  root.replaceChildren(card);

  function clearErrors() {
    formError.textContent = "";
    for (const [key, el] of Object.entries(errors)) {
      el.textContent = "";
      fields[key].removeAttribute("aria-invalid");
    }
  }

  function showError(text, key) {
    if (key && errors[key]) {
      errors[key].textContent = text;
      fields[key].setAttribute("aria-invalid", "true");
      fields[key].focus();
    } else {
      formError.textContent = text;
    }
  }

  function setBusy(busy) {
    joinButton.disabled = busy;
    joinButton.textContent = busy ? "Joining…" : "Join";
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function read() {
    const type = call ? call.type : fields.type.value;
    const id = call ? call.id : fields.id.value.trim();
    if (dev) {
      const name = fields.name.value.trim().replace(/\s+/g, " ");
      if (!name) return showError("Enter a display name.", "name");
      return { name, type, id };
    }
    const token = fields.token.value.trim();
    if (!token) return showError("Paste an access token.", "token");
    if (token.split(".").length !== 3) return showError("This access token is not valid.", "token");
    return { token, type, id };
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const values = read();
    if (!values) return;
    if (!isValidId(values.id)) {
      const message = "Call ID must be 1–64 characters: letters, digits, _ or -.";
      return showError(message, call ? null : "id");
    }
    setBusy(true);
    try {
      await onJoin(values);
    } finally {
      if (form.isConnected) setBusy(false);
    }
  }

  if (options.error) showError(options.error, options.errorField);
  if (call && !isValidId(call.id)) {
    showError(`"${call.id}" is not a valid call ID: use 1–64 letters, digits, _ or -.`);
  }
  if (!options.error) (fields.name || fields.token).focus();

  return { showError, setBusy };
}
