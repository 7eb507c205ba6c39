// The ad-hoc payment pages' only script: live figures on the progress page (its status
// JSON every 2 s), the stop button without leaving the page, and the EVSE's live status
// on its page. Every page works without it (forms post, the progress page refreshes).
"use strict";

(function () {
  const POLL_MS = 2000;
  const EVSE_POLL_MS = 5000;

  function setText(id, value) {
    const el = document.getElementById(id);
    if (el && value !== undefined && el.textContent !== value) {
      el.textContent = value;
    }
  }

  async function getJson(url) {
    const response = await fetch(url, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    return response.json();
  }

  function progressPage() {
    const state = document.getElementById("state");
    if (!state) {
      return;
    }
    const url = state.dataset.statusUrl;
    const shown = state.dataset.state;
    let timer = null;

    function show(progress) {
      // A new state brings other parts (the receipt, the stop button): the server renders
      // the page for it.
      if (progress.state !== shown) {
        window.location.reload();
        return false;
      }
      setText("energy", progress.energy_text);
      setText("cost", progress.cost_text);
      setText("duration", progress.duration_text);
      setText("cap-held", progress.held_text);
      return !progress.settled;
    }

    async function poll() {
      let again = true;
      try {
        again = show(await getJson(url));
      } catch (error) {
        again = true; // a lost answer: try again at the next tick
      }
      if (again) {
        timer = window.setTimeout(poll, POLL_MS);
      }
    }

    const form = document.getElementById("stop-form");
    if (form) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = document.getElementById("stop-button");
        button.disabled = true;
        button.textContent = "Stopping\u2026";
        try {
          const response = await fetch(form.action, {
            method: "POST",
            headers: { Accept: "application/json" },
            credentials: "same-origin",
          });
          const body = await response.json();
          if (!response.ok) {
            setText("state-text", body.error || "The stop did not go through; try again.");
            button.disabled = false;
            button.textContent = "Stop charging";
            return;
          }
          window.clearTimeout(timer);
          show(body);
        } catch (error) {
          button.disabled = false;
          button.textContent = "Stop charging";
        }
      });
    }
    if (state.dataset.settled !== "true") {
      timer = window.setTimeout(poll, POLL_MS);
    }
  }

  function evsePage() {
    const holder = document.querySelector("[data-status-url]");
    const status = document.getElementById("status");
    if (!holder || !status || document.body.dataset.page !== "evse") {
      return;
    }
    const url = holder.dataset.statusUrl;
    const payable = document.getElementById("pay-form") !== null;

    async function poll() {
      try {
        const evse = await getJson(url);
        if (evse.payable !== payable) {
          window.location.reload();
          return;
        }
        setText("status", evse.status_text);
        status.dataset.status = evse.status;
        status.className = `status status-${evse.status_class}`;
      } catch (error) {
        // keep what is shown; the next tick tries again
      }
      window.setTimeout(poll, EVSE_POLL_MS);
    }
    window.setTimeout(poll, EVSE_POLL_MS);

    const form = document.getElementById("pay-form");
    if (form) {
      form.addEventListener("submit", () => {
        const button = document.getElementById("pay-button");
        // One payment per press: the browser goes on to the provider.
        window.setTimeout(() => {
          button.disabled = true;
          button.textContent = "Going to the payment\u2026";
        }, 0);
      });
    }
  }

  progressPage();
  evsePage();
})();
