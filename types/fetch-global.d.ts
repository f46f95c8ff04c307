// What the shop's shared fetch helper (bookpay/assets/static/fetch-answer.js) leaves on the
// window for the page scripts: checkout-early.js, checkout.js and cart.js.
export {};

declare global {
  /** The shop's answer, read: status 0 when the shop was not reached (or not in time). */
  interface ShopAnswer {
    status: number;
    ok: boolean;
    /** the answer's JSON, null when it is not JSON (a proxy's page) */
    body: any;
    /** the seconds its Retry-After says to wait, 0 when none */
    retryAfter: number;
  }

  interface BookpayFetch {
    /** Resolves once no press (a mouse button, a finger, a pen) is under way on the page. */
    afterPress(): Promise<void>;
    fetchAnswer(url: string, init: RequestInit): Promise<Response>;
    readAnswer(sent: Promise<Response>): Promise<ShopAnswer>;
    postJson(url: string, data: object): Promise<ShopAnswer>;
    busyWait(retryAfter: number): number;
    notNowText(status: number, retryAfter: number): string;
    GENERIC_ERROR: string;
    UNREACHED: string;
    BUSY: string;
    TIMED_OUT: string;
  }

  interface Window {
    /** missing only where the script was not run (blocked, or not loaded) */
    bookpayFetch?: BookpayFetch;
  }
}
