/* The card form: mounts Stripe Elements in #card-element, confirms the SetupIntent, then posts its id to the site.
   Loaded as a file (the Content-Security-Policy allows no inline script). With localstripe's stand-in Stripe.js
   (development and tests) it also names the stand-in's plain inputs so a person can tell them apart. */
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form) return;
  var button = document.getElementById("card-submit");
  var errors = document.getElementById("card-errors");
  var EMPTY = "Enter the card's number, expiry month and year, CVC and postal code first.";
  var GENERIC = "The card could not be saved. Check the details or try another card.";

  if (typeof Stripe === "undefined") {
    errors.textContent = "The card form could not load. Check your connection and reload the page.";
    button.disabled = true;
    return;
  }
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");

  // Stripe's change event says whether the card is complete; the stand-in calls the handler without an event.
  var state = { touched: false, complete: null };
  card.on("change", function (event) {
    state.touched = true;
    state.complete = event && typeof event.complete === "boolean" ? event.complete : null;
    if (errors.textContent === EMPTY) errors.textContent = "";
  });

  var STAND_IN = {
    number: ["Card number", "4242 4242 4242 4242", "cc-number"],
    exp_month: ["Expiry month", "MM", "cc-exp-month"],
    exp_year: ["Expiry year", "YY", "cc-exp-year"],
    cvc: ["CVC", "CVC", "cc-csc"],
    postal_code: ["Postal code", "Postal code", "postal-code"],
  };
  var box = document.getElementById("card-element");
  Array.prototype.forEach.call(box.querySelectorAll("input[placeholder]"), function (input) {
    var name = input.getAttribute("placeholder");
    var spec = STAND_IN[name];
    if (!spec) return;
    input.setAttribute("data-stand-in", name);
    input.setAttribute("aria-label", spec[0]);
    input.setAttribute("placeholder", spec[1]);
    input.setAttribute("autocomplete", spec[2]);
    input.setAttribute("inputmode", "numeric");
    input.classList.add("stand-in-input");
  });
  if (box.querySelector("[data-stand-in]")) {
    box.classList.add("stand-in");
    Array.prototype.forEach.call(box.querySelectorAll("span"), function (span) {
      if (span.textContent.indexOf("localstripe") === 0) span.hidden = true;
    });
  }

  function message(error) {
    // Stripe's own errors carry a type and a message written for people; anything else (a script error) does not.
    if (error && error.type && error.message) return error.message + " Check the details or try another card.";
    if (error && !(error instanceof Error) && error.message) return error.message + " Check the details or try another card.";
    return GENERIC;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errors.textContent = "";
    if (!state.touched || state.complete === false) {
      errors.textContent = EMPTY;
      return;
    }
    button.disabled = true;
    var name = document.getElementById("cardholder-name").value;
    var result;
    try {
      result = await stripe.confirmCardSetup(form.dataset.clientSecret, {
        payment_method: { card: card, billing_details: { name: name } },
      });
    } catch (exc) {
      result = { error: exc };
    }
    if (result.error) {
      errors.textContent = message(result.error);
      button.disabled = false;
      return;
    }
    form.elements["setup_intent_id"].value = result.setupIntent.id;
    form.submit();
  });
})();
