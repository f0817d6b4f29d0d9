// The call controls: microphone, camera and screen share (toggle, or request when not allowed), and Leave.
import { h, icon, setAttr, setText } from "./dom.js";
import { SOURCES } from "./media.js";

const STATUS = {
  "send-audio": ["Allowed to send audio", "Not allowed to send audio"],
  "send-video": ["Allowed to send video", "Not allowed to send video"],
  screenshare: ["Allowed to share screen", "Not allowed to share screen"],
};
const REQUEST_LABEL = {
  "send-audio": "Request audio permission",
  "send-video": "Request video permission",
  screenshare: "Request screen share permission",
};
const ICON = { microphone: ["mic", "micOff"], camera: ["camera", "cameraOff"], screen: ["screen", "screen"] };

export class Controls {
  /**
   * `session` gives: `call`, `media` (LocalMedia), `toggle(source)`, `moderation`
   * (`request(capability)`, `isRequesting(capability)`, `cooldownLeft(capability)` in seconds),
   * `canUseMedia()`, `offline`, `leave()`.
   */
  constructor(session) {
    this.session = session;
    this.groups = SOURCES.map((spec) => this.createGroup(spec));
    this.leaveButton = h(
      "button",
      { type: "button", class: "btn btn-danger control-btn leave-btn", onclick: () => session.leave() },
      icon("leave"),
      h("span", {}, "Leave"),
    );
    this.element = h(
      "section",
      { class: "controls", "aria-labelledby": "controls-title" },
      h("h2", { id: "controls-title", class: "sr-only" }, "Call controls"),
      h("div", { class: "controls-inner" }, this.groups.map((g) => g.element), this.leaveButton),
    );
  }

  createGroup(spec) {
    const toggleIcon = h("span", { class: "icon-slot" });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "btn control-btn toggle",
        "aria-pressed": "false",
        onclick: () => this.session.toggle(spec.source),
      },
      toggleIcon,
      h("span", {}, spec.toggleLabel),
    );
    const request = h(
      "button",
      {
        type: "button",
        class: "btn control-btn request",
        hidden: true,
        onclick: () => this.session.moderation.request(spec.capability),
      },
      icon("hand"),
      h("span", {}, REQUEST_LABEL[spec.capability]),
    );
    const status = h("p", { class: "control-status" });
    const note = h("p", { class: "control-note", hidden: true });
    const element = h(
      "div",
      { class: "control", "data-source": spec.source },
      toggle,
      request,
      status,
      note,
    );
    return { spec, element, toggle, toggleIcon, request, status, note };
  }

  render() {
    for (const group of this.groups) this.renderGroup(group);
  }

  renderGroup({ spec, element, toggle, toggleIcon, request, status, note }) {
    const { call, media, moderation } = this.session;
    const permission = call.permission(spec.capability);
    const held = permission.hasPermission;
    const awaiting = !held && permission.isAwaitingPermission;
    const requestable = !held && !awaiting && permission.canRequestPermission;
    const cooldown = requestable ? moderation.cooldownLeft(spec.capability) : 0;
    const on = media.isOn(spec.source);
    const busy = media.isBusy(spec.source);

    // Held → toggle; awaiting or requestable → the request button; neither → a disabled toggle.
    const showRequest = awaiting || requestable;
    toggle.hidden = showRequest;
    request.hidden = !showRequest;

    toggle.disabled = !held || busy || !this.session.canUseMedia();
    setAttr(toggle, "aria-pressed", String(held && on));
    setAttr(toggle, "aria-busy", busy ? "true" : null);
    toggle.classList.toggle("is-on", held && on);
    const iconName = ICON[spec.source][held && on ? 0 : 1];
    if (toggleIcon.dataset.icon !== iconName) {
      toggleIcon.dataset.icon = iconName;
      toggleIcon.replaceChildren(icon(iconName));
    }

    request.disabled =
      awaiting || cooldown > 0 || moderation.isRequesting(spec.capability) || this.session.offline;
    request.classList.toggle("is-awaiting", awaiting);

    const [allowed, notAllowed] = STATUS[spec.capability];
    setText(status, held ? allowed : notAllowed);
    element.dataset.allowed = String(held);

    let noteText = "";
    if (awaiting) noteText = "Awaiting approval";
    else if (cooldown > 0) noteText = `You can ask again in ${cooldown} s`;
    else if (held && busy) noteText = media.busyPhase(spec.source) === "stopping" ? "Stopping…" : "Starting…";
    setText(note, noteText);
    note.hidden = !noteText;
    note.classList.toggle("is-awaiting", awaiting);
  }
}
