// What the checkout page's inline script (bookpay/assets/inline/checkout-early.js) leaves on the
// window for checkout.js: the attempt's first request, already on its way, and how to ask again.
export {};

declare global {
  interface AttemptAsked {
    /** the attempt's id (kept by the page, and in the tab's sessionStorage where it can be) */
    id: string;
    /** the shop's answer to POST /create-payment-intent for it */
    response: Promise<Response>;
  }

  interface BookpayAttempt {
    ask(fresh: boolean): AttemptAsked;
    /** forgets the tab's attempt: the page, loaded again, starts a new one */
    forget(): void;
    first: AttemptAsked;
  }

  interface Window {
    bookpayAttempt?: BookpayAttempt;
  }
}
