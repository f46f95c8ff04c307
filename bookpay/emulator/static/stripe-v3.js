/*
 * bookpay's offline Stripe.js: the part of https://js.stripe.com/v3/ that bookpay's checkout uses,
 * served by the emulator at /v3/ so that a checkout page works with no network.
 *
 * Public surface, with Stripe's names and result shapes:
 *   Stripe(publishableKey, options?) -> stripe
 *   stripe.elements({clientSecret, appearance, loader}) -> elements
 *   stripe.confirmPayment({elements, clientSecret?, confirmParams, redirect?}) -> Promise
 *   stripe.retrievePaymentIntent(clientSecret) -> Promise<{paymentIntent} | {error}>
 *   stripe.handleNextAction({clientSecret}) -> Promise
 *   elements.create('linkAuthentication' | 'address' | 'payment', options), getElement(type),
 *     submit(), update(options), fetchUpdates()
 *   element.mount(), unmount(), destroy(), on(), once(), off(), update(), focus(), blur(), clear();
 *     address elements also have getValue().
 *
 * Unlike real Stripe.js the inputs live in the page (no iframes): they are plain, labelled inputs
 * named as Stripe's own (email; name, addressLine1, ...; number, expiry, cvc, postalCode), so that
 * tests and assistive technology can reach them. Card numbers therefore pass through the page:
 * this script is for test mode only, and it talks only to the emulator it was loaded from.
 *
 * Styling is applied through element.style properties (CSSOM), which a CSP of `style-src 'self'`
 * allows; style attributes and <style> elements would be blocked there.
 */
(function () {
  'use strict';

  if (typeof window.Stripe === 'function' && window.Stripe.offline) return; // loaded twice

  // Calls go back to the service that served this script: <emulator>/v3/ -> <emulator>/v1/...
  const script = document.currentScript;
  const API_BASE = script && script.src ? new URL(script.src).origin : window.location.origin;

  class IntegrationError extends Error {
    constructor(message) {
      super(message);
      this.name = 'IntegrationError';
      this.type = 'invalid_request_error';
    }
  }

  // Misuse that Stripe.js reports through the result rather than by throwing.
  function integrationResult(message, param) {
    const error = {type: 'invalid_request_error', message: message};
    if (param) error.param = param;
    return {error: error};
  }

  /* ---------------------------------------------------------------- HTTP ---------------- */

  // Stripe's bracket notation: {a: {b: [x]}} -> a[b][0]=x. Null and undefined are left out.
  function encodeForm(params) {
    const pairs = [];
    (function walk(value, key) {
      if (value === undefined || value === null) return;
      if (Array.isArray(value)) {
        value.forEach((item, i) => walk(item, key + '[' + i + ']'));
      } else if (typeof value === 'object') {
        Object.keys(value).forEach((k) => walk(value[k], key ? key + '[' + k + ']' : k));
      } else {
        pairs.push(encodeURIComponent(key) + '=' + encodeURIComponent(String(value)));
      }
    })(params, '');
    return pairs.join('&');
  }

  // The key travels as a form parameter, as Stripe.js sends it: with no Authorization header and
  // a form content type the request is CORS-"simple", so no preflight is needed.
  async function apiRequest(key, method, path, params) {
    const query = encodeForm(Object.assign({}, params, {key: key}));
    const init = {method: method, credentials: 'omit', mode: 'cors'};
    let url = API_BASE + path;
    if (method === 'GET') {
      url += '?' + query;
    } else {
      init.body = query;
      init.headers = {'Content-Type': 'application/x-www-form-urlencoded'};
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      return {error: {type: 'api_connection_error',
        message: 'An error occurred with our connection to Stripe. Request was retried 0 times.'}};
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      // fall through: a non-JSON answer is reported as an api_error below
    }
    if (!response.ok || !body) {
      if (body && body.error) return {error: body.error};
      return {error: {type: 'api_error',
        message: 'Unexpected response from Stripe (HTTP ' + response.status + ').'}};
    }
    return {data: body};
  }

  function intentIdOf(clientSecret) {
    const match = /^(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+$/.exec(clientSecret || '');
    return match ? match[1] : null;
  }

  /* ------------------------------------------------------------- DOM helpers ------------- */

  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach((name) => {
      const value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    });
    (children || []).forEach((child) => child && node.appendChild(child));
    return node;
  }

  function css(node, styles) {
    Object.keys(styles).forEach((name) => { node.style[name] = styles[name]; });
    return node;
  }

  function visuallyHidden(node) {
    return css(node, {position: 'absolute', width: '1px', height: '1px', overflow: 'hidden',
      clip: 'rect(0 0 0 0)', whiteSpace: 'nowrap', margin: '-1px', padding: '0', border: '0'});
  }

  /* -- colour contrast (WCAG 1.4.11: borders and focus rings need 3:1 against what they sit on) -- */

  function parseColor(value) {
    const s = String(value || '').trim().toLowerCase();
    let m = /^#([0-9a-f]{3})$/.exec(s);
    if (m) return m[1].split('').map((c) => parseInt(c + c, 16));
    m = /^#([0-9a-f]{6})(?:[0-9a-f]{2})?$/.exec(s);
    if (m) return [0, 2, 4].map((i) => parseInt(m[1].slice(i, i + 2), 16));
    m = /^rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)/.exec(s);
    if (m) return [m[1], m[2], m[3]].map(Number);
    return {white: [255, 255, 255], black: [0, 0, 0]}[s] || null;
  }

  function luminance(rgb) {
    const [r, g, b] = rgb.map((c) => {
      const x = c / 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  function toHex(rgb) {
    return '#' + rgb.map((c) => c.toString(16).padStart(2, '0')).join('');
  }

  // `color` when it stands out 3:1 from `background`; otherwise the least change towards
  // `toward` (the text colour, else black or white) that does. Unparsable colours are trusted.
  function legible(color, background, toward) {
    const c = parseColor(color);
    const bg = parseColor(background);
    if (!c || !bg || contrast(c, bg) >= 3) return color;
    let target = parseColor(toward);
    if (!target || contrast(target, bg) < 3) {
      target = luminance(bg) > 0.18 ? [0, 0, 0] : [255, 255, 255];
    }
    for (let step = 1; step <= 10; step++) {
      const mixed = c.map((v, i) => Math.round(v + (target[i] - v) * step / 10));
      if (contrast(mixed, bg) >= 3) return toHex(mixed);
    }
    return toHex(target);
  }

  function themeOf(appearance) {
    const a = appearance || {};
    const v = a.variables || {};
    const night = a.theme === 'night';
    const background = v.colorBackground || (night ? '#30313d' : '#ffffff');
    const text = v.colorText || (night ? '#ffffff' : '#30313d');
    const primary = v.colorPrimary || '#0570de';
    return {
      primary: primary,
      background: background,
      text: text,
      danger: v.colorDanger || (night ? '#fe87a1' : '#df1b41'),
      border: legible(night ? '#8d8e9c' : '#8a8f98', background, text),
      focus: legible(primary, background, text),
      focusOutline: v.focusOutline || null,
      focusBoxShadow: v.focusBoxShadow || null,
      skeleton: night ? '#424353' : '#e6e6e6',
      readOnlyBackground: v.colorBackground ? background : (night ? '#26272f' : '#f6f8fa'),
      font: v.fontFamily || 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
      radius: v.borderRadius || '5px',
      flat: a.theme === 'flat',
    };
  }

  /* -------------------------------------------------------------- validation ------------- */

  const COUNTRIES = {
    AT: 'Austria', AU: 'Australia', BE: 'Belgium', BR: 'Brazil', CA: 'Canada', CH: 'Switzerland',
    DE: 'Germany', DK: 'Denmark', ES: 'Spain', FI: 'Finland', FR: 'France', GB: 'United Kingdom',
    HK: 'Hong Kong', IE: 'Ireland', IN: 'India', IT: 'Italy', JP: 'Japan', MX: 'Mexico',
    NL: 'Netherlands', NO: 'Norway', NZ: 'New Zealand', PT: 'Portugal', SE: 'Sweden',
    SG: 'Singapore', US: 'United States',
  };
  const NO_POSTAL_CODE = ['HK'];
  const STATE_REQUIRED = {US: 'State', CA: 'Province', AU: 'State', JP: 'Prefecture'};
  // What the optional administrative area is called elsewhere (short, so it fits on one line).
  const AREA_NAMES = {GB: 'County', IE: 'County', ES: 'Province', IT: 'Province',
    NL: 'Province'};
  // The Payment Element asks for a billing postal code only where card networks check it.
  const CARD_POSTAL_COUNTRIES = ['US', 'GB', 'CA'];
  // Loose shapes: a full postcode, any case, with or without the inner space.
  const CARD_POSTAL_PATTERNS = {
    GB: {pattern: /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/i, min: 5},
    CA: {pattern: /^[A-Z]\d[A-Z] ?\d[A-Z]\d$/i, min: 6},
  };

  // Stripe's brand codes, and the names Stripe shows for them.
  const BRANDS = [
    {brand: 'amex', name: 'American Express', pattern: /^3[47]/, lengths: [15], cvc: 4},
    {brand: 'diners', name: 'Diners Club', pattern: /^3(0[0-5]|[689])/, lengths: [14, 16],
      cvc: 3},
    {brand: 'unionpay', name: 'UnionPay', pattern: /^62/, lengths: [16, 17, 18, 19], cvc: 3},
    {brand: 'visa', name: 'Visa', pattern: /^4/, lengths: [16], cvc: 3},
    {brand: 'mastercard', name: 'Mastercard', pattern: /^(5[1-5]|2[2-7])/, lengths: [16],
      cvc: 3},
    {brand: 'discover', name: 'Discover', pattern: /^(6011|64[4-9]|65)/, lengths: [16], cvc: 3},
    {brand: 'jcb', name: 'JCB', pattern: /^35/, lengths: [16], cvc: 3},
  ];
  const UNKNOWN_BRAND = {brand: 'unknown', lengths: [16], cvc: 3};

  function brandOf(digits) {
    return BRANDS.find((b) => b.pattern.test(digits)) || UNKNOWN_BRAND;
  }

  function digitsOf(value) {
    return String(value || '').replace(/\D/g, '');
  }

  function luhn(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = Number(digits[digits.length - 1 - i]);
      if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
      sum += d;
    }
    return sum % 10 === 0;
  }

  // Errors carry Stripe's codes and wording; `incomplete` ones are shown only on blur or submit.
  function problem(code, message, incomplete) {
    return {code: code, message: message, incomplete: !!incomplete};
  }

  function checkCardNumber(value) {
    const digits = digitsOf(value);
    const brand = brandOf(digits);
    const max = Math.max.apply(null, brand.lengths);
    const incomplete = problem('incomplete_number', 'Your card number is incomplete.', true);
    if (digits.length < brand.lengths[0]) return incomplete;
    if (luhn(digits)) return null;
    if (digits.length < max) return incomplete;
    return problem('invalid_number', 'Your card number is invalid.');
  }

  function checkExpiry(value) {
    const digits = digitsOf(value);
    if (digits.length < 4) {
      return problem('incomplete_expiry', "Your card's expiration date is incomplete.", true);
    }
    const month = Number(digits.slice(0, 2));
    const year = 2000 + Number(digits.slice(2, 4));
    const now = new Date();
    if (month < 1 || month > 12) {
      return problem('invalid_expiry_month', "Your card's expiration month is invalid.");
    }
    if (year < now.getFullYear()) {
      return problem('invalid_expiry_year_past', "Your card's expiration year is in the past.");
    }
    if (year === now.getFullYear() && month < now.getMonth() + 1) {
      return problem('invalid_expiry_month_past', "Your card's expiration date is in the past.");
    }
    if (year > now.getFullYear() + 50) {
      return problem('invalid_expiry_year', "Your card's expiration year is invalid.");
    }
    return null;
  }

  function checkCvc(value, number) {
    const needed = brandOf(digitsOf(number)).cvc;
    const digits = digitsOf(value);
    if (digits.length < needed) {
      return problem('incomplete_cvc', "Your card's security code is incomplete.", true);
    }
    if (digits.length > needed) {
      return problem('invalid_cvc', "Your card's security code is invalid.");
    }
    return null;
  }

  function checkPostalCode(value, country) {
    const v = String(value || '').trim();
    if (NO_POSTAL_CODE.indexOf(country) !== -1) return null;
    const incomplete = problem('incomplete_zip', 'Your postal code is incomplete.', true);
    const invalid = problem('invalid_zip', 'Your postal code is invalid.');
    if (country === 'US') {
      if (/^\d{5}(-?\d{4})?$/.test(v)) return null;
      return /^\d{0,4}$/.test(v) ? incomplete : invalid;
    }
    if (v.length < 3) return incomplete;
    if (country === 'CA' && !/^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$/.test(v)) return invalid;
    return null;
  }

  // The Payment Element's billing postal code: US ZIP or ZIP+4, loose UK and Canadian shapes,
  // anything non-empty elsewhere.
  function checkCardPostalCode(value, country) {
    const v = String(value || '').trim();
    if (country === 'US') return checkPostalCode(v, 'US');
    const incomplete = problem('incomplete_zip', 'Your postal code is incomplete.', true);
    if (!v) return incomplete;
    const shape = CARD_POSTAL_PATTERNS[country];
    if (!shape || shape.pattern.test(v)) return null;
    return v.replace(/\s/g, '').length < shape.min ? incomplete
      : problem('invalid_zip', 'Your postal code is invalid.');
  }

  function checkEmail(value) {
    const v = String(value || '').trim();
    const incomplete = problem('incomplete_email', 'Your email address is incomplete.', true);
    if (!v || v.indexOf('@') === -1 || /@$/.test(v)) return incomplete;
    if (!/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)*\.[^\s@.]{2,}$/.test(v)) {
      return /@[^.]*$/.test(v) ? incomplete : problem('email_invalid', 'Your email address is invalid.');
    }
    return null;
  }

  function required(code, message) {
    return (value) => (String(value || '').trim() ? null : problem(code, message, true));
  }

  /* -------------------------------------------------------------- formatting ------------- */

  function formatCardNumber(value) {
    const digits = digitsOf(value);
    const brand = brandOf(digits);
    const kept = digits.slice(0, Math.max.apply(null, brand.lengths));
    const groups = brand.brand === 'amex' || (brand.brand === 'diners' && kept.length <= 14)
      ? [4, 6, 5] : [4, 4, 4, 4, 3];
    const parts = [];
    let at = 0;
    groups.forEach((size) => {
      if (at < kept.length) parts.push(kept.slice(at, at + size));
      at += size;
    });
    return parts.join(' ');
  }

  // "MM / YY"; a lone 2-9 is a month ("4" -> "04 / "), and so is one digit followed by a slash
  // ("1/28" -> "01 / 28"). While deleting no separator is added, otherwise backspace could
  // never get past it.
  function formatExpiry(value, deleting) {
    const raw = String(value || '');
    let digits = digitsOf(raw).slice(0, 4);
    const slash = raw.indexOf('/');
    if (!deleting && slash !== -1 && /^[1-9]$/.test(digitsOf(raw.slice(0, slash)))) {
      digits = ('0' + digitsOf(raw)).slice(0, 4);
    }
    if (/^[2-9]$/.test(digits)) digits = '0' + digits;
    if (digits.length > 2 || (digits.length === 2 && !deleting)) {
      return digits.slice(0, 2) + ' / ' + digits.slice(2);
    }
    return digits;
  }

  /* -------------------------------------------------------- element definitions ---------- */

  function countryOptions(allowed) {
    const codes = (allowed && allowed.length ? allowed : Object.keys(COUNTRIES))
      .filter((c) => COUNTRIES[c]);
    return codes.sort((a, b) => COUNTRIES[a].localeCompare(COUNTRIES[b]))
      .map((c) => [c, COUNTRIES[c]]);
  }

  // Each Element type: the fields it renders, its initial values, and its `change` payload.
  const SPECS = {
    linkAuthentication: {
      fields: () => [
        {name: 'email', label: 'Email', type: 'email', autocomplete: 'email',
          inputmode: 'email', validate: checkEmail},
      ],
      initial: (opts) => ({email: (opts.defaultValues && opts.defaultValues.email) || ''}),
      value: (el) => ({email: el._values.email.trim()}),
    },

    address: {
      check: (opts) => {
        if (opts.mode !== 'shipping' && opts.mode !== 'billing') {
          throw new IntegrationError(
            'Invalid value for create(\'address\'): mode should be one of the following strings: '
            + 'shipping, billing. You specified: ' + opts.mode + '.');
        }
      },
      fields: (el) => {
        const mode = el._options.mode;
        const country = () => el._values.country;
        const fields = [
          {name: 'name', label: 'Full name', autocomplete: mode + ' name',
            validate: required('incomplete_name', 'Your full name is incomplete.')},
          {name: 'country', label: 'Country or region', select: true,
            autocomplete: mode + ' country',
            options: countryOptions(el._options.allowedCountries)},
          {name: 'addressLine1', label: 'Address line 1', autocomplete: mode + ' address-line1',
            validate: required('incomplete_address_line1', 'Your address is incomplete.')},
          {name: 'addressLine2', label: 'Address line 2 (optional)',
            autocomplete: mode + ' address-line2'},
          {name: 'locality', label: 'City', autocomplete: mode + ' address-level2', row: 'place',
            validate: required('incomplete_locality', 'Your city is incomplete.')},
          {name: 'administrativeArea', row: 'place', autocomplete: mode + ' address-level1',
            label: () => STATE_REQUIRED[country()]
              || (AREA_NAMES[country()] || 'State') + ' (optional)',
            validate: (v) => (STATE_REQUIRED[country()] && !String(v).trim()
              ? problem('incomplete_administrative_area',
                'Your ' + STATE_REQUIRED[country()].toLowerCase() + ' is incomplete.', true)
              : null)},
          {name: 'postalCode', row: 'place', autocomplete: mode + ' postal-code',
            label: () => (country() === 'US' ? 'ZIP code' : 'Postal code'),
            visible: () => NO_POSTAL_CODE.indexOf(country()) === -1,
            validate: (v) => checkPostalCode(v, country())},
        ];
        const phone = el._options.fields && el._options.fields.phone;
        if (phone === 'always') {
          const needed = el._options.validation && el._options.validation.phone
            && el._options.validation.phone.required === 'always';
          fields.push({name: 'phone', label: needed ? 'Phone number' : 'Phone number (optional)',
            type: 'tel', autocomplete: mode + ' tel',
            validate: needed ? required('incomplete_phone', 'Your phone number is incomplete.')
              : null});
        }
        return fields;
      },
      initial: (opts) => {
        const d = opts.defaultValues || {};
        const a = d.address || {};
        const allowed = opts.allowedCountries;
        let country = a.country || 'US';
        if (allowed && allowed.length && allowed.indexOf(country) === -1) country = allowed[0];
        return {name: d.name || '', country: country, addressLine1: a.line1 || '',
          addressLine2: a.line2 || '', locality: a.city || '', administrativeArea: a.state || '',
          postalCode: a.postal_code || '', phone: d.phone || ''};
      },
      value: (el) => {
        const v = el._values;
        const value = {name: v.name.trim(), address: {
          line1: v.addressLine1.trim(), line2: v.addressLine2.trim() || null,
          city: v.locality.trim(), state: v.administrativeArea.trim(),
          postal_code: v.postalCode.trim(), country: v.country}};
        if (el._options.fields && el._options.fields.phone === 'always') {
          value.phone = v.phone.trim();
        }
        return value;
      },
      extra: (el) => ({elementMode: el._options.mode, isNewAddress: true}),
    },

    payment: {
      fields: (el) => [
        // The card's brand shows in the field as soon as the number says it, as Stripe's does.
        {name: 'number', label: 'Card number', autocomplete: 'cc-number', inputmode: 'numeric',
          placeholder: '1234 1234 1234 1234', format: formatCardNumber, validate: checkCardNumber,
          badge: () => brandOf(digitsOf(el._values.number))},
        {name: 'expiry', label: 'Expiration date', autocomplete: 'cc-exp', inputmode: 'numeric',
          placeholder: 'MM / YY', row: 'card', format: formatExpiry, validate: checkExpiry},
        {name: 'cvc', label: 'Security code', autocomplete: 'cc-csc', inputmode: 'numeric',
          placeholder: 'CVC', row: 'card',
          format: (v) => digitsOf(v).slice(0, brandOf(digitsOf(el._values.number)).cvc),
          validate: (v) => checkCvc(v, el._values.number)},
        // Named `country` as Stripe's is; its id carries the element type, so it does not
        // collide with the Address Element's.
        {name: 'country', label: 'Country', select: true, autocomplete: 'billing country',
          row: 'billing', options: countryOptions(), value: () => el._billingCountry(),
          visible: () => collectsAddressPart(el._options, 'country')},
        {name: 'postalCode', autocomplete: 'billing postal-code', row: 'billing',
          label: () => (el._billingCountry() === 'US' ? 'ZIP' : 'Postal code'),
          visible: () => CARD_POSTAL_COUNTRIES.indexOf(el._billingCountry()) !== -1
            && collectsAddressPart(el._options, 'postal_code'),
          validate: (v) => checkCardPostalCode(v, el._billingCountry())},
      ],
      initial: (opts) => {
        const b = (opts.defaultValues && opts.defaultValues.billingDetails) || {};
        const a = b.address || {};
        // '' = not chosen: the billing country then follows the Address Element (see below).
        return {number: '', expiry: '', cvc: '', country: COUNTRIES[a.country] ? a.country : '',
          postalCode: a.postal_code || ''};
      },
      value: () => ({type: 'card'}),
      extra: () => ({collapsed: false}),
    },
  };

  // Which billing details the Payment Element was told not to collect ({fields: {billingDetails}}).
  // Returns true/false for name, email and phone; for address 'all' or {postal_code: true, ...}.
  const ADDRESS_PARTS = {line1: 'line1', line2: 'line2', city: 'city', state: 'state',
    postalCode: 'postal_code', country: 'country'};
  function neverField(options, field) {
    const bd = options.fields && options.fields.billingDetails;
    if (field !== 'address') return bd === 'never' || !!(bd && bd[field] === 'never');
    if (bd === 'never' || (bd && bd.address === 'never')) return 'all';
    const parts = {};
    if (bd && bd.address && typeof bd.address === 'object') {
      Object.keys(ADDRESS_PARTS).forEach((k) => {
        if (bd.address[k] === 'never') parts[ADDRESS_PARTS[k]] = true;
      });
    }
    return parts;
  }

  function collectsAddressPart(options, part) {
    const never = neverField(options, 'address');
    return never !== 'all' && !never[part];
  }

  /* ---------------------------------------------------------------- Element -------------- */

  const EVENTS = ['ready', 'change', 'focus', 'blur', 'escape', 'loaderror', 'loaderstart'];

  class Element {
    constructor(group, type, options) {
      this._group = group;
      this._type = type;
      this._spec = SPECS[type];
      this._options = Object.assign({}, options);
      if (this._spec.check) this._spec.check(this._options);
      this._values = this._spec.initial(this._options);
      this._handlers = {};
      this._shown = {}; // field name -> error currently displayed
      this._node = null;
      this._fields = null; // name -> {def, input, box, label, error}, while rendered
      this._prebuilt = null; // {root, fields}: built at mount, shown once the group has loaded
      this._hasFocus = false;
      this._destroyed = false;
    }

    on(event, handler) {
      this._alive('on');
      if (EVENTS.indexOf(event) === -1 || typeof handler !== 'function') {
        throw new IntegrationError('Unsupported event or handler for ' + this._type + '.on(): '
          + event + '. Supported events: ' + EVENTS.join(', ') + '.');
      }
      (this._handlers[event] = this._handlers[event] || []).push(handler);
      return this;
    }

    once(event, handler) {
      const wrapper = (payload) => {
        this.off(event, wrapper);
        handler(payload);
      };
      wrapper.original = handler;
      return this.on(event, wrapper);
    }

    off(event, handler) {
      const list = this._handlers[event] || [];
      this._handlers[event] = handler
        ? list.filter((fn) => fn !== handler && fn.original !== handler) : [];
      return this;
    }

    _emit(event, extra) {
      const payload = Object.assign({elementType: this._type}, extra);
      (this._handlers[event] || []).slice().forEach((fn) => {
        // A failing handler must not break the element; rethrow later so it still shows.
        try { fn(payload); } catch (e) { setTimeout(() => { throw e; }); }
      });
    }

    _alive(method) {
      if (this._destroyed) {
        throw new IntegrationError('This Element has already been destroyed. Please create a new '
          + 'one (calling ' + method + '()).');
      }
    }

    mount(target) {
      this._alive('mount');
      const node = typeof target === 'string' ? document.querySelector(target) : target;
      if (!node || node.nodeType !== 1) {
        throw new IntegrationError('The selector you specified (' + target + ') applies to no '
          + 'DOM elements that are currently on the page.\nMake sure the element exists on the '
          + 'page before calling mount().');
      }
      if (this._node) {
        throw new IntegrationError('This Element is already mounted. Use `unmount()` to unmount '
          + 'the Element before re-mounting.');
      }
      this._node = node;
      node.classList.add('StripeElement');
      if (!this._group._settled) {
        if (this._group._options.loader !== 'never') {
          this._renderLoader();
          Promise.resolve().then(() => this._emit('loaderstart'));
        }
        // The inputs are built now, while the PaymentIntent is on its way, and put in the page
        // only once it has come: `ready` still means rendered and usable, and comes sooner.
        this._prebuilt = this._build();
      }
      // `then` runs asynchronously even when loading is over, so `ready` handlers attached
      // right after mount() still hear it, as with Stripe's iframes.
      this._group._loaded.then((result) => {
        if (this._node !== node) return; // unmounted meanwhile
        const built = this._prebuilt;
        this._prebuilt = null;
        node.removeAttribute('aria-busy');
        if (result.error) {
          node.textContent = '';
          this._emit('loaderror', {error: result.error});
          return;
        }
        // Ids are made unique against the document: one taken meanwhile means building again.
        const clash = built && Object.keys(built.fields).some((name) => (
          document.getElementById(built.fields[name].input.id)));
        if (built && !clash) this._attach(built);
        else this._render();
        this._emit('ready');
      });
    }

    unmount() {
      this._alive('unmount');
      if (!this._node) return;
      this._node.textContent = '';
      ['StripeElement', 'StripeElement--empty', 'StripeElement--complete',
        'StripeElement--invalid', 'StripeElement--focus'].forEach((c) => {
        this._node.classList.remove(c);
      });
      this._node.removeAttribute('aria-busy');
      this._node = null;
      this._fields = null;
      this._prebuilt = null;
      this._shown = {};
      this._hasFocus = false;
    }

    destroy() {
      this._alive('destroy');
      this.unmount();
      this._group._forget(this);
      this._destroyed = true;
    }

    update(options) {
      this._alive('update');
      const changes = Object.assign({}, options);
      Object.assign(this._options, changes);
      if (this._prebuilt) this._prebuilt = this._build(); // built for the old options
      if (!this._fields) return;
      // readOnly alone (set while a payment is processing) keeps the inputs, their focus included.
      if (Object.keys(changes).every((k) => k === 'readOnly')) {
        Object.keys(this._fields).forEach((k) => this._applyReadOnly(this._fields[k]));
      } else {
        this._render();
      }
    }

    _applyReadOnly(field) {
      const on = !!this._options.readOnly;
      // A <select> cannot be read-only: disabled is the closest, as Stripe's own Elements do.
      if (field.def.select) field.input.disabled = on;
      else field.input.readOnly = on;
      const t = this._theme();
      css(field.input, {background: on ? t.readOnlyBackground : t.background,
        cursor: on ? 'default' : ''});
    }

    // Another Element of the group changed something this one may follow (the shipping country).
    _groupChanged() {
      if (!this._fields || this._type !== 'payment') return;
      const before = JSON.stringify(this._changePayload());
      this._refresh();
      Object.keys(this._fields).forEach((name) => {
        const error = this._fieldError(name);
        if (this._shown[name] || (error && !error.incomplete)) this._showError(name, error);
      });
      const after = this._changePayload();
      if (JSON.stringify(after) !== before) this._emit('change', after);
    }

    focus() {
      this._alive('focus');
      const first = this._visibleFields()[0];
      if (first) first.input.focus();
    }

    blur() {
      this._alive('blur');
      const active = document.activeElement;
      if (this._node && active && this._node.contains(active)) active.blur();
    }

    clear() {
      this._alive('clear');
      const country = this._values.country;
      Object.keys(this._values).forEach((k) => { this._values[k] = ''; });
      if (country !== undefined) this._values.country = country;
      this._shown = {};
      if (this._fields) {
        Object.keys(this._fields).forEach((k) => {
          this._fields[k].input.value = this._values[k];
          this._showError(k, null);
        });
        this._refresh();
      }
      this._emit('change', this._changePayload());
    }

    /* -- rendering -- */

    _theme() {
      return themeOf(this._group._options.appearance);
    }

    _renderLoader() {
      const t = this._theme();
      const skeleton = h('div', {class: 'BookpayElement-loader'}, [
        visuallyHidden(h('span', {text: 'Loading…'})),
      ]);
      [[30, 14], [100, 40], [30, 14], [100, 40]].forEach(([width, height]) => {
        skeleton.appendChild(css(h('div', {'aria-hidden': 'true'}), {width: width + '%',
          height: height + 'px', margin: '0 0 8px', borderRadius: t.radius,
          background: t.skeleton}));
      });
      this._node.setAttribute('aria-busy', 'true');
      this._node.textContent = '';
      this._node.appendChild(skeleton);
    }

    _render() {
      // Empty the node first: ids are made unique against the document, old inputs included.
      this._node.textContent = '';
      this._attach(this._build());
    }

    // The Element's inputs, not yet in the page: {root, fields}.
    _build() {
      const t = this._theme();
      const root = css(h('div', {class: 'BookpayElement BookpayElement--' + this._type}),
        {fontFamily: t.font, color: t.text, fontSize: '16px', lineHeight: '1.4'});
      const rows = {};
      const fields = {};
      this._spec.fields(this).forEach((def) => {
        const field = this._renderField(def, t);
        fields[def.name] = field;
        if (!def.row) {
          root.appendChild(field.box);
        } else {
          if (!rows[def.row]) {
            rows[def.row] = css(h('div', {class: 'BookpayElement-row'}), {display: 'flex',
              gap: '12px', flexWrap: 'wrap', alignItems: 'flex-start'});
            root.appendChild(rows[def.row]);
          }
          css(field.box, {flex: '1 1 8em', minWidth: '0'});
          // One line per label, so the inputs of a row line up whatever the labels say.
          css(field.label, {whiteSpace: 'nowrap', overflow: 'hidden', textOverflow: 'ellipsis'});
          rows[def.row].appendChild(field.box);
        }
      });
      root.addEventListener('focusin', () => {
        if (this._hasFocus) return;
        this._hasFocus = true;
        this._node.classList.add('StripeElement--focus');
        this._emit('focus');
      });
      root.addEventListener('focusout', (event) => {
        if (event.relatedTarget && root.contains(event.relatedTarget)) return;
        this._hasFocus = false;
        if (this._node) this._node.classList.remove('StripeElement--focus');
        this._emit('blur');
      });
      return {root: root, fields: fields};
    }

    _attach(built) {
      this._fields = built.fields;
      this._node.textContent = '';
      this._node.appendChild(built.root);
      Object.keys(this._shown).forEach((name) => this._showError(name, this._shown[name]));
      this._refresh();
    }

    _renderField(def, t) {
      const id = uniqueId('Field-' + this._type + '-' + def.name + 'Input');
      const label = css(h('label', {for: id}), {display: 'block', fontSize: '14px',
        margin: '0 0 4px', color: t.text});
      const attrs = {id: id, name: def.name, autocomplete: def.autocomplete,
        'aria-invalid': 'false'};
      let input;
      if (def.select) {
        input = h('select', attrs, def.options.map(([code, name]) => (
          h('option', {value: code, text: name}))));
      } else {
        input = h('input', Object.assign(attrs, {type: def.type || 'text',
          inputmode: def.inputmode, placeholder: def.placeholder, spellcheck: 'false'}));
      }
      input.value = def.value ? def.value() : this._values[def.name];
      css(input, {display: 'block', width: '100%', boxSizing: 'border-box',
        padding: '10px 12px', font: 'inherit', color: t.text, background: t.background,
        border: '1px solid ' + t.border, borderRadius: t.radius, outline: 'none',
        outlineOffset: '2px', boxShadow: t.flat ? 'none' : '0 1px 1px rgba(0, 0, 0, 0.03)'});
      const box = css(h('div', {class: 'BookpayElement-field'}, [label, input]),
        {margin: '0 0 12px'});
      let badge = null;
      if (def.badge) {
        // Over the input's right end, inside its padding; read after the input by screen readers.
        badge = css(h('span', {class: 'BookpayElement-brand'}), {position: 'absolute',
          right: '12px', bottom: '11px', fontSize: '13px', fontWeight: '600', color: t.text,
          pointerEvents: 'none'});
        const holder = css(h('div', {}, [input, badge]), {position: 'relative'});
        box.appendChild(holder);
        css(input, {paddingRight: '9.5em'});
      }
      const field = {def: def, input: input, box: box, label: label, error: null, badge: badge};
      this._applyReadOnly(field);
      input.addEventListener(def.select ? 'change' : 'input', (e) => this._onInput(field, e));
      input.addEventListener('focus', () => this._paint(field, true));
      input.addEventListener('blur', () => this._onBlur(field));
      return field;
    }

    _paint(field, focused) {
      const t = this._theme();
      const invalid = field.input.getAttribute('aria-invalid') === 'true';
      const ring = invalid ? t.danger : t.focus;
      const color = invalid ? t.danger : (focused ? t.focus : t.border);
      // A solid ring, not a faint glow: it must stand out 3:1 (WCAG 1.4.11).
      css(field.input, {borderColor: color,
        outline: focused ? (t.focusOutline || '2px solid ' + ring) : 'none',
        boxShadow: focused && t.focusBoxShadow ? t.focusBoxShadow : 'none'});
    }

    _visibleFields() {
      return this._fields
        ? Object.keys(this._fields).map((k) => this._fields[k]).filter((f) => !f.box.hidden)
        : [];
    }

    // Labels and visibility depend on other values (a country's postal code is a "ZIP code").
    _refresh() {
      Object.keys(this._fields || {}).forEach((name) => {
        const f = this._fields[name];
        const label = typeof f.def.label === 'function' ? f.def.label() : f.def.label;
        if (f.label.textContent !== label) f.label.textContent = label;
        // As Stripe's labels do, "(optional)" marks the fields that may stay empty; every other
        // one is required, and says so to screen readers too.
        f.input.setAttribute('aria-required', String(label.indexOf('(optional)') === -1));
        if (f.def.value && f.input.value !== f.def.value()) f.input.value = f.def.value();
        if (f.badge) {
          const brand = f.def.badge();
          f.badge.textContent = brand.name || '';
          f.badge.dataset.brand = brand.brand;
          f.badge.hidden = !brand.name;
        }
        const visible = f.def.visible ? f.def.visible() : true;
        f.box.hidden = !visible;
        f.box.style.display = visible ? '' : 'none';
        if (!visible) this._showError(name, null);
      });
      const state = this._state();
      const classes = this._node.classList;
      classes.toggle('StripeElement--empty', state.empty);
      classes.toggle('StripeElement--complete', state.complete);
      classes.toggle('StripeElement--invalid', Object.keys(this._shown).length > 0);
    }

    _showError(name, error) {
      const field = this._fields && this._fields[name];
      if (error) this._shown[name] = error;
      else delete this._shown[name];
      if (!field) return;
      field.input.setAttribute('aria-invalid', error ? 'true' : 'false');
      if (error) {
        if (!field.error) {
          field.error = css(h('div', {id: field.input.id + '-error', role: 'alert',
            class: 'BookpayElement-error'}), {color: this._theme().danger, fontSize: '14px',
            margin: '4px 0 0'});
          field.box.appendChild(field.error);
          field.input.setAttribute('aria-describedby', field.error.id);
        }
        field.error.textContent = error.message;
      } else if (field.error) {
        field.error.remove();
        field.error = null;
        field.input.removeAttribute('aria-describedby');
      }
      this._paint(field, document.activeElement === field.input);
      if (this._node) {
        this._node.classList.toggle('StripeElement--invalid', Object.keys(this._shown).length > 0);
      }
    }

    _onInput(field, event) {
      const input = field.input;
      let value = input.value;
      if (field.def.format) {
        const deleting = !!(event.inputType && event.inputType.indexOf('delete') === 0);
        const formatted = field.def.format(value, deleting);
        if (formatted !== value) {
          // Keep the caret after the same number of digits it followed before formatting.
          const caret = input.selectionStart === null ? value.length : input.selectionStart;
          let digitsBefore = digitsOf(value.slice(0, caret)).length;
          // A month's leading zero was added ("1/" -> "01 / "): the caret moves past it too.
          const added = digitsOf(formatted).length - digitsOf(value).length;
          if (added > 0 && digitsBefore > 0) digitsBefore += added;
          input.value = formatted;
          let pos = 0;
          for (let seen = 0; pos < formatted.length && seen < digitsBefore; pos++) {
            if (/\d/.test(formatted[pos])) seen++;
          }
          if (caret >= value.length) pos = formatted.length;
          if (document.activeElement === input) input.setSelectionRange(pos, pos);
          value = formatted;
        }
      }
      this._values[field.def.name] = value;
      if (this._type === 'address' && field.def.name === 'country') {
        this._group._elements.forEach((el) => { if (el !== this) el._groupChanged(); });
      }
      // A card number change can change the CVC's length; a country change a postal code's rules.
      this._refresh();
      Object.keys(this._fields).forEach((name) => {
        const error = this._fieldError(name);
        if (name === field.def.name) {
          // "Invalid" shows while typing; "incomplete" waits for blur or submit, as in Stripe.
          this._showError(name, error && !error.incomplete ? error : null);
        } else if (this._shown[name] || (error && !error.incomplete)) {
          // Another field's value may now be wrong: a 4-digit CVC once the card is a Visa,
          // a ZIP code once the country is Canada.
          this._showError(name, error);
        }
      });
      this._emit('change', this._changePayload());
    }

    _onBlur(field) {
      const error = this._fieldError(field.def.name);
      if (error && String(field.input.value).trim()) this._showError(field.def.name, error);
      this._paint(field, false);
    }

    _fieldError(name) {
      const f = this._fields[name];
      if (!f || f.box.hidden || !f.def.validate) return null;
      return f.def.validate(this._values[name]);
    }

    _state() {
      const visible = this._visibleFields().filter((f) => !f.def.select);
      return {
        empty: visible.every((f) => !String(this._values[f.def.name]).trim()),
        complete: this._fields ? visible.every((f) => !this._fieldError(f.def.name)) : false,
      };
    }

    _changePayload() {
      const state = this._fields ? this._state() : {empty: true, complete: false};
      const extra = this._spec.extra ? this._spec.extra(this) : {};
      return Object.assign({empty: state.empty, complete: state.complete}, extra,
        {value: this._spec.value(this)});
    }

    // Shows every error (as on submit); returns the first one with its input, or null.
    _validate() {
      let first = null;
      this._visibleFields().forEach((f) => {
        const error = this._fieldError(f.def.name);
        this._showError(f.def.name, error);
        if (error && !first) first = {error: error, input: f.input};
      });
      return first;
    }

    // The shopper's choice, else defaultValues, else the mounted Address Element's country
    // (until the shopper picks one), else US.
    _billingCountry() {
      if (this._values.country) return this._values.country;
      const address = this._group.getElement('address');
      if (address && address._node && COUNTRIES[address._values.country]) {
        return address._values.country;
      }
      return 'US';
    }
  }

  let idCounter = 0;
  function uniqueId(base) {
    if (!document.getElementById(base)) return base;
    idCounter += 1;
    return base + '-' + idCounter;
  }

  /* ---------------------------------------------------------------- Elements ------------- */

  class Elements {
    constructor(stripe, options) {
      this._stripe = stripe;
      this._options = Object.assign({loader: 'auto'}, options);
      this._elements = [];
      const secret = this._options.clientSecret;
      if (secret !== undefined && !intentIdOf(secret)) {
        throw new IntegrationError('Invalid value for elements(): clientSecret should be a client '
          + 'secret of the form ${id}_secret_${secret}. You specified: ' + secret + '.');
      }
      this._load();
    }

    // The group checks its client secret once, as Stripe's Elements do when they start; every
    // Element waits for it and reports `loaderror` when it fails.
    _load() {
      const secret = this._options.clientSecret;
      this._settled = !secret;
      this._loaded = !secret ? Promise.resolve({}) : this._stripe.retrievePaymentIntent(secret)
        .then((result) => {
          this._settled = true;
          // What the Elements reflect of the PaymentIntent (its amount, currency, status),
          // as of the last load or fetchUpdates().
          if (result.paymentIntent) this._intent = result.paymentIntent;
          return result;
        });
      return this._loaded;
    }

    create(type, options) {
      if (!SPECS[type]) {
        throw new IntegrationError('A valid Element name must be provided. Valid Elements are: '
          + Object.keys(SPECS).join(', ') + '; you passed: ' + type + '.');
      }
      if (this.getElement(type)) {
        throw new IntegrationError('Can only create one Element of type ' + type + '.');
      }
      if (type !== 'address' && !this._options.clientSecret && !this._options.mode) {
        throw new IntegrationError('In order to create a ' + type + ' element, you must pass a '
          + 'clientSecret or mode when creating the Elements group.');
      }
      const element = new Element(this, type, options);
      if (type === 'address') {
        element.getValue = () => this._loaded.then(() => {
          const payload = element._changePayload();
          return {complete: payload.complete, isNewAddress: true, value: payload.value};
        });
      }
      this._elements.push(element);
      return element;
    }

    getElement(type) {
      return this._elements.find((el) => el._type === type) || null;
    }

    _forget(element) {
      this._elements = this._elements.filter((el) => el !== element);
    }

    update(options) {
      Object.assign(this._options, options);
      this._elements.forEach((el) => {
        if (el._fields) el._render();
        else if (el._prebuilt) el._prebuilt = el._build(); // built with the old appearance
      });
    }

    // Stripe.js: fetches the PaymentIntent again after the server updated it (an amount), and
    // reflects it in the Elements; resolves {} or {error: {message, status?}}. submit() and
    // confirmPayment() wait for it, as they wait for the first load.
    fetchUpdates() {
      return this._load().then((result) => {
        if (!result.error) return {};
        const error = {message: result.error.message || 'The PaymentIntent could not be loaded.'};
        if (result.error.code) error.status = result.error.code;
        return {error: error};
      });
    }

    // Validates every mounted Element in page order, shows all messages, focuses the first
    // invalid input. Resolves {} or {error} as elements.submit() does.
    async submit() {
      const loaded = await this._loaded;
      if (loaded.error) return {error: loaded.error};
      const mounted = this._elements.filter((el) => el._fields).sort((a, b) => (
        a._node.compareDocumentPosition(b._node) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
      let first = null;
      mounted.forEach((el) => {
        const found = el._validate();
        if (found && !first) first = found;
      });
      if (!first) return {};
      first.input.focus();
      return {error: {type: 'validation_error', code: first.error.code,
        message: first.error.message}};
    }

    // confirmPayment's payment_method_data and shipping, from the mounted Elements.
    _confirmData(confirmParams) {
      const payment = this.getElement('payment');
      const link = this.getElement('linkAuthentication');
      const address = this.getElement('address');
      const given = (confirmParams.payment_method_data || {}).billing_details || {};
      const opts = payment._options;

      for (const field of ['name', 'email', 'phone']) {
        if (neverField(opts, field) && !(field in given)) return missingNever(field);
      }
      const neverAddress = neverField(opts, 'address');
      const parts = neverAddress === 'all' ? Object.values(ADDRESS_PARTS) : Object.keys(neverAddress);
      for (const part of parts) {
        if (!(given.address && part in given.address)) return missingNever('address.' + part);
      }

      const billing = {};
      const addr = address && address._fields ? SPECS.address.value(address) : null;
      if (link && link._fields && !neverField(opts, 'email')) {
        billing.email = SPECS.linkAuthentication.value(link).email;
      }
      if (addr && !neverField(opts, 'name')) billing.name = addr.name;
      if (addr && addr.phone && !neverField(opts, 'phone')) billing.phone = addr.phone;
      if (addr && address._options.mode === 'billing' && neverAddress !== 'all') {
        billing.address = addr.address;
      } else if (neverAddress !== 'all') {
        billing.address = {country: payment._billingCountry()};
        if (!payment._fields.postalCode.box.hidden) {
          billing.address.postal_code = payment._values.postalCode.trim();
        }
      }
      const expiry = digitsOf(payment._values.expiry);
      const pmData = deepMerge({
        type: 'card',
        card: {number: digitsOf(payment._values.number), exp_month: Number(expiry.slice(0, 2)),
          exp_year: 2000 + Number(expiry.slice(2, 4)), cvc: digitsOf(payment._values.cvc)},
        billing_details: billing,
      }, confirmParams.payment_method_data || {});
      const data = {payment_method_data: dropEmpty(pmData)};
      if (confirmParams.shipping) {
        data.shipping = confirmParams.shipping;
      } else if (addr && address._options.mode === 'shipping') {
        data.shipping = dropEmpty({name: addr.name, phone: addr.phone, address: addr.address});
      }
      return data;
    }
  }

  function missingNever(field) {
    return integrationResult('You specified "never" for fields.billing_details.' + field
      + ' when creating the payment Element, but did not pass confirmParams.payment_method_data'
      + '.billing_details.' + field + ' when calling stripe.confirmPayment(). If you opt out of '
      + 'collecting data via the payment Element using the fields option, the data must be '
      + 'passed in when calling stripe.confirmPayment().',
    'payment_method_data[billing_details][' + field.replace('.', '][') + ']');
  }

  function isPlainObject(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  function deepMerge(base, extra) {
    const out = Object.assign({}, base);
    Object.keys(extra).forEach((k) => {
      out[k] = isPlainObject(out[k]) && isPlainObject(extra[k])
        ? deepMerge(out[k], extra[k]) : extra[k];
    });
    return out;
  }

  // Collected blanks are left out, as Stripe.js does, rather than sent as "unset this".
  function dropEmpty(value) {
    if (!isPlainObject(value)) return value;
    const out = {};
    Object.keys(value).forEach((k) => {
      const v = dropEmpty(value[k]);
      if (v === '' || v === null || v === undefined) return;
      if (isPlainObject(v) && !Object.keys(v).length) return;
      out[k] = v;
    });
    return out;
  }

  /* ------------------------------------------------------------------ Stripe ------------- */

  function Stripe(publishableKey, options) {
    if (!(this instanceof Stripe)) return new Stripe(publishableKey, options);
    if (typeof publishableKey !== 'string' || !publishableKey) {
      throw new IntegrationError('Please call Stripe() with your publishable key. You used an '
        + 'empty string.');
    }
    if (/^(sk|rk)_/.test(publishableKey)) {
      throw new IntegrationError('You should not use your secret key with Stripe.js.\nPlease '
        + 'pass a publishable key instead.');
    }
    if (!/^pk_/.test(publishableKey)) {
      throw new IntegrationError('Invalid API Key: ' + publishableKey + '. Stripe.js takes a '
        + 'publishable key, which starts with pk_.');
    }
    this._key = publishableKey;
    this._options = Object.assign({}, options);
  }

  Stripe.offline = true;
  Stripe.version = 3;

  Stripe.prototype.elements = function (options) {
    return new Elements(this, options || {});
  };

  Stripe.prototype._request = function (method, path, params) {
    return apiRequest(this._key, method, path, params);
  };

  Stripe.prototype.retrievePaymentIntent = async function (clientSecret) {
    const id = intentIdOf(clientSecret);
    if (!id) {
      throw new IntegrationError('Invalid value for retrievePaymentIntent: clientSecret should be '
        + 'a client secret of the form ${id}_secret_${secret}. You specified: ' + clientSecret + '.');
    }
    const result = await this._request('GET', '/v1/payment_intents/' + id,
      {client_secret: clientSecret});
    return result.error ? {error: result.error} : {paymentIntent: result.data};
  };

  Stripe.prototype.confirmPayment = async function (options) {
    if (!isPlainObject(options)) {
      throw new IntegrationError('stripe.confirmPayment(): expected an object with `elements` '
        + 'and `confirmParams`.');
    }
    const elements = options.elements;
    const redirect = options.redirect || 'always';
    const confirmParams = Object.assign({}, options.confirmParams);
    if (redirect !== 'always' && redirect !== 'if_required') {
      throw new IntegrationError('Invalid value for confirmPayment(): redirect should be one of '
        + 'the following strings: always, if_required. You specified: ' + redirect + '.');
    }
    if (elements !== undefined && !(elements instanceof Elements)) {
      throw new IntegrationError('Invalid value for confirmPayment(): elements should be an '
        + 'Elements group. You specified: ' + typeof elements + '.');
    }
    const clientSecret = options.clientSecret || (elements && elements._options.clientSecret);
    const id = intentIdOf(clientSecret);
    if (!id) {
      return integrationResult('stripe.confirmPayment(): a PaymentIntent client secret is needed: '
        + 'pass `clientSecret`, or create `elements` with one.', 'client_secret');
    }
    if (redirect === 'always' && !confirmParams.return_url) {
      return integrationResult('stripe.confirmPayment(): the `confirmParams.return_url` argument '
        + 'is required unless passing `redirect: \'if_required\'`.', 'return_url');
    }

    let collected = {};
    if (elements) {
      const payment = elements.getElement('payment');
      if (!payment || !payment._node) {
        return integrationResult('Invalid value for confirmPayment(): elements should have a '
          + 'mounted Payment Element.');
      }
      const validated = await elements.submit();
      if (validated.error) return validated;
      if (!payment._fields) {
        return integrationResult('stripe.confirmPayment(): the Payment Element is not ready yet; '
          + 'wait for its `ready` event.');
      }
      collected = elements._confirmData(confirmParams);
      if (collected.error) return collected;
    } else if (!confirmParams.payment_method) {
      return integrationResult('stripe.confirmPayment(): pass `elements`, or a '
        + '`confirmParams.payment_method`.', 'payment_method');
    }

    const params = Object.assign({}, confirmParams, collected, {client_secret: clientSecret});
    const result = await this._request('POST', '/v1/payment_intents/' + id + '/confirm', params);
    if (result.error) return {error: result.error};
    return afterConfirm(result.data, confirmParams.return_url, redirect);
  };

  Stripe.prototype.handleNextAction = async function (options) {
    const clientSecret = options && options.clientSecret;
    const retrieved = await this.retrievePaymentIntent(clientSecret);
    if (retrieved.error) return retrieved;
    return afterConfirm(retrieved.paymentIntent, null, 'if_required');
  };

  const REDIRECT_STATUS = {succeeded: 'succeeded', requires_capture: 'succeeded',
    processing: 'processing'};

  // What Stripe.js does once the API has answered a confirmation: follow a redirect the intent
  // asks for, go to return_url on success, or resolve the outcome.
  function afterConfirm(intent, returnUrl, redirect) {
    const next = intent.next_action;
    if (intent.status === 'requires_action') {
      if (next && next.type === 'redirect_to_url' && next.redirect_to_url
          && next.redirect_to_url.url) {
        return navigate(next.redirect_to_url.url);
      }
      return {error: {type: 'invalid_request_error', code: 'payment_intent_unexpected_state',
        message: 'This offline Stripe.js cannot handle next_action of type '
          + (next && next.type) + '.', payment_intent: intent}};
    }
    // A failed 3-D Secure attempt comes back as requires_payment_method with the reason.
    if (intent.status === 'requires_payment_method' && intent.last_payment_error) {
      return {error: Object.assign({}, intent.last_payment_error, {payment_intent: intent})};
    }
    if (redirect === 'always' && returnUrl && REDIRECT_STATUS[intent.status]) {
      const url = new URL(returnUrl, window.location.href);
      url.searchParams.set('payment_intent', intent.id);
      url.searchParams.set('payment_intent_client_secret', intent.client_secret);
      url.searchParams.set('redirect_status', REDIRECT_STATUS[intent.status]);
      return navigate(url.toString());
    }
    return {paymentIntent: intent};
  }

  // The page is leaving: like Stripe.js, never settle, so the caller's UI stays "processing".
  function navigate(url) {
    window.location.assign(url);
    return new Promise(() => {});
  }

  window.Stripe = Stripe;
})();
