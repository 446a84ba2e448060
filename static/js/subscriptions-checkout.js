// Checkout: choosing another plan shows the parts that plan needs (copies, addresses, gift)
// by asking the server again, as the "Update for this plan" button does without JavaScript.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.checkout");
  const update = form && form.querySelector("button[name=update]");
  if (!update) return;
  update.hidden = true;
  form.querySelectorAll("input[name=plan]").forEach((radio) => {
    radio.addEventListener("change", () => update.click());
  });
});
