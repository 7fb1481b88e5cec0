// What the console knows right now, shared by its modules.
export const state = {
  me: null,            // GET /me: agent, settings, time_zone, agent_reply_seconds, ...
  tab: "mine",
  inbox: null,         // the last GET /inbox answer
  selected: null,      // the open conversation's id
  detail: null,        // GET /conversations/{id}
  loadedAt: 0,         // when detail was fetched (ms), for the live wait clock
  mode: "reply",       // the composer: reply or note
  quick: [],
  agents: [],
};

export const $ = (id) => document.getElementById(id);
