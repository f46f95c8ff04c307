// The checkout page loads Stripe.js with a <script> tag, which puts `Stripe` on the window:
// @stripe/stripe-js declares that global (Window.Stripe), and this brings its declarations into
// the type check of checkout.js (`npm run typecheck`, run by the test suite).
/// <reference types="@stripe/stripe-js" />
export {};
