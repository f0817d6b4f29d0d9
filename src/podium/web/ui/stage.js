// The stage: one tile per speaker or host (never per listener: the audience is audience.js's),
// their video, who is speaking, moderator actions.
// Tiles, <video> and <audio> elements are keyed and kept across renders so playback never restarts.
import { h, icon, setAttr, setText, syncKeyed } from "./dom.js";
import { capabilitiesOf, initials, roleOf } from "./people.js";

const SPEAKING_LEVEL = 0.01;
const VIDEO_SOURCES = ["camera", "screen"];
const REVOKES = [
  { capability: "send-audio", label: "Revoke audio" },
  { capability: "send-video", label: "Revoke video" },
  { capability: "screenshare", label: "Revoke screen" },
];

export class Stage {
  /**
   * `session` gives: `call`, `userId`, `names`, `media` (LocalMedia), and `moderation` with
   * the actions `revoke(userId, capability)` and `mute(userId)` (promises).
   */
  constructor(session) {
    this.session = session;
    this.list = h("ul", { class: "tiles", role: "list" });
    this.count = h("span", { class: "count" });
    this.element = h(
      "section",
      { class: "stage", "aria-labelledby": "stage-title" },
      h("h2", { id: "stage-title", class: "section-title" }, "On stage ", this.count),
      this.list,
    );
    // Remote microphones play here, one <audio> per track, outside the tiles.
    this.audioSinks = h("div", { class: "audio-sinks", hidden: true });
    this.levels = new Map();
  }

  render(state) {
    const { call, userId } = this.session;
    // The state's participants are the stage, plus our own record when we are in the audience.
    const onStage = Object.values(state.participants || {}).filter((p) => p.tier !== "audience");
    const people = onStage.sort((a, b) => {
      if (a.user_id === userId) return -1;
      if (b.user_id === userId) return 1;
      return String(a.joined_at).localeCompare(String(b.joined_at));
    });
    setText(this.count, `(${people.length})`);
    const remote = call.remoteTracks || new Map();
    syncKeyed(
      this.list,
      people,
      (p) => p.user_id,
      (p) => this.createTile(p.user_id),
      (tile, p) => this.updateTile(tile, p, state, remote),
    );
    this.syncAudio(remote);
  }

  /** Apply `call.audioLevels()` (Map userId → 0..1) without a full render. */
  setLevels(levels) {
    this.levels = levels;
    for (const tile of this.list.children) this.updateSpeaking(tile);
  }

  createTile(userId) {
    const parts = {
      avatar: h("div", { class: "avatar", "aria-hidden": "true" }),
      videos: h("div", { class: "tile-videos" }),
      speaking: h("span", { class: "speaking-badge", hidden: true }, "speaking"),
      name: h("span", { class: "tile-name-text" }),
      you: h("span", { class: "you", hidden: true }, "(you)"),
      role: h("span", { class: "role-badge" }),
      micIcon: h("span", { class: "mic-state" }),
      actions: h("div", { class: "tile-actions", hidden: true }),
      revokeButtons: [],
      muteButton: null,
    };
    for (const { capability, label } of REVOKES) {
      const button = h("button", { type: "button", class: "btn btn-small btn-ghost" }, label);
      button.addEventListener("click", () =>
        this.act(button, () => this.session.moderation.revoke(userId, capability)),
      );
      parts.revokeButtons.push(button);
      parts.actions.append(button);
    }
    parts.muteButton = h("button", { type: "button", class: "btn btn-small btn-ghost" }, "Mute");
    parts.muteButton.addEventListener("click", () =>
      this.act(parts.muteButton, () => this.session.moderation.mute(userId)),
    );
    parts.actions.append(parts.muteButton);

    const tile = h(
      "li",
      { class: "tile", "data-user-id": userId },
      h("div", { class: "tile-media" }, parts.avatar, parts.videos, parts.speaking),
      h(
        "div",
        { class: "tile-info" },
        h("p", { class: "tile-name" }, parts.name, " ", parts.you),
        h("p", { class: "tile-meta" }, parts.role, parts.micIcon),
      ),
      parts.actions,
    );
    tile.__parts = parts;
    tile.__userId = userId;
    tile.__videoEls = new Map(); // source → <video>
    return tile;
  }

  updateTile(tile, participant, state, remote) {
    const { call, userId: me, names, media } = this.session;
    const parts = tile.__parts;
    const userId = participant.user_id;
    const isMe = userId === me;
    const name = names.of(userId, state);

    setText(parts.name, name);
    parts.you.hidden = !isMe;
    setText(parts.avatar, initials(name));
    const role = roleOf(state, userId);
    setText(parts.role, role);
    setAttr(parts.role, "data-role", role);

    // Video: our own tracks as a muted local preview, everyone else's from the SFU.
    const tracks = {};
    for (const source of VIDEO_SOURCES) {
      const track = isMe ? media.tracks[source] : remote.get(`${userId}/${source}`)?.track;
      if (track && track.readyState !== "ended") tracks[source] = track;
    }
    this.syncVideos(tile, tracks, name, isMe);
    tile.classList.toggle("has-video", Object.keys(tracks).length > 0);
    tile.classList.toggle("has-screen", Boolean(tracks.screen));

    // Microphone state, with its text alternative.
    const caps = isMe ? state.ownCapabilities || new Set() : capabilitiesOf(state, userId);
    const micOn = isMe ? media.isOn("microphone") : remote.has(`${userId}/microphone`);
    const micState = micOn ? "on" : caps.has("send-audio") ? "muted" : "not-allowed";
    if (parts.micIcon.dataset.state !== micState) {
      parts.micIcon.dataset.state = micState;
      const text = {
        on: "Microphone on",
        muted: "Muted",
        "not-allowed": "Not allowed to speak",
      }[micState];
      parts.micIcon.replaceChildren(
        icon(micState === "on" ? "mic" : micState === "muted" ? "micOff" : "lock"),
        h("span", { class: "sr-only" }, text),
      );
      parts.micIcon.title = text;
    }

    // Moderator actions on everyone else's tile.
    const canRevoke = !isMe && call.hasPermission("update-call-permissions");
    const canMute = !isMe && call.hasPermission("mute-users");
    parts.actions.hidden = !(canRevoke || canMute);
    parts.revokeButtons.forEach((button, index) => {
      button.hidden = !canRevoke;
      setAttr(button, "aria-label", `${REVOKES[index].label} from ${name}`);
    });
    parts.muteButton.hidden = !canMute;
    setAttr(parts.muteButton, "aria-label", `Mute ${name}`);

    this.updateSpeaking(tile);
  }

  updateSpeaking(tile) {
    const level = this.levels.get(tile.__userId) || 0;
    const speaking = level > SPEAKING_LEVEL;
    if (tile.classList.contains("speaking") === speaking) return;
    tile.classList.toggle("speaking", speaking);
    tile.dataset.speaking = String(speaking);
    tile.__parts.speaking.hidden = !speaking;
  }

  syncVideos(tile, tracks, name, isMe) {
    const els = tile.__videoEls;
    for (const source of VIDEO_SOURCES) {
      const track = tracks[source];
      let video = els.get(source);
      if (!track) {
        if (video) {
          video.srcObject = null;
          video.remove();
          els.delete(source);
        }
        continue;
      }
      if (!video) {
        const what = source === "screen" ? "screen" : "camera";
        video = h("video", {
          class: `tile-video tile-${source}${isMe && source === "camera" ? " mirrored" : ""}`,
          autoplay: true,
          playsinline: true,
          muted: true,
          "aria-label": isMe ? `Your ${what}` : `${name}'s ${what}`,
        });
        video.muted = true; // the property, not only the attribute, keeps autoplay allowed
        els.set(source, video);
        tile.__parts.videos.append(video);
      }
      if (video.__track !== track) {
        video.__track = track;
        video.srcObject = new MediaStream([track]);
        video.play().catch(() => {}); // autoplay may be refused or interrupted: it retries on its own
      }
    }
  }

  syncAudio(remote) {
    const mics = [...remote.entries()]
      .filter(([, t]) => t.source === "microphone" && t.userId !== this.session.userId && t.track)
      .map(([key, t]) => ({ key, track: t.track }));
    syncKeyed(
      this.audioSinks,
      mics,
      (m) => m.key,
      (m) => h("audio", { autoplay: true, "data-key": m.key }),
      (audio, m) => {
        if (audio.__track === m.track) return;
        audio.__track = m.track;
        audio.srcObject = new MediaStream([m.track]);
        audio.play().catch(() => {});
      },
      (audio) => {
        audio.srcObject = null;
      },
    );
  }

  /** Run a moderator action with its button disabled meanwhile. */
  async act(button, action) {
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  }

  /** Stop every media element (leaving the call). */
  dispose() {
    for (const el of this.element.querySelectorAll("video")) el.srcObject = null;
    for (const el of this.audioSinks.querySelectorAll("audio")) el.srcObject = null;
    this.audioSinks.remove();
  }
}
