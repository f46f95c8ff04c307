// Drives the offline Stripe.js for tests/browser/test_stripejs.py. Query parameters:
// cs (client secret), redirect ('always' | 'if_required'), never ('1': the Payment Element does
// not collect the email, which is then passed at confirm unless noemail=1), theme ('night': the
// night theme with no variables), billing (a country: the Payment Element's
// defaultValues.billingDetails.address.country).
(function () {
  'use strict';
  const params = new URLSearchParams(window.location.search);
  window.__events = [];
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
  });

  const stripe = Stripe('pk_test_bookpay');
  const elements = stripe.elements({
    clientSecret: params.get('cs'),
    loader: 'auto',
    appearance: params.get('theme') === 'night' ? {theme: 'night'}
      : {theme: 'stripe', variables: {colorPrimary: '#0a6640'}},
  });
  const never = params.get('never') === '1';
  const link = elements.create('linkAuthentication');
  const address = elements.create('address', {mode: 'shipping'});
  const paymentOptions = {layout: 'tabs'};
  if (never) paymentOptions.fields = {billingDetails: {email: 'never'}};
  if (params.get('billing')) {
    paymentOptions.defaultValues = {billingDetails: {address: {country: params.get('billing')}}};
  }
  const payment = elements.create('payment', paymentOptions);

  [link, address, payment].forEach((element) => {
    ['ready', 'change', 'focus', 'blur', 'loaderror'].forEach((name) => {
      element.on(name, (event) => {
        window.__events.push(Object.assign({event: name}, JSON.parse(JSON.stringify(event))));
      });
    });
  });
  // What the page holds when each Element says `ready`: its inputs, rendered and in the page.
  window.__atReady = {};
  [[link, '#link-auth-element'], [address, '#address-element'], [payment, '#payment-element']]
    .forEach(([element, selector]) => {
      element.on('ready', (event) => {
        const node = document.querySelector(selector);
        const inputs = Array.from(node.querySelectorAll('input, select'));
        window.__atReady[event.elementType] = {
          inputs: inputs.map((input) => input.getAttribute('name')),
          connected: inputs.every((input) => input.isConnected && input.offsetParent !== null),
          loader: !!node.querySelector('.BookpayElement-loader'),
          busy: node.getAttribute('aria-busy'),
        };
      });
    });
  link.mount('#link-auth-element');
  address.mount('#address-element');
  payment.mount('#payment-element');
  window.__stripe = stripe;
  window.__elements = elements;

  let email = '';
  link.on('change', (event) => { email = event.value.email; });

  const button = document.getElementById('submit-button');
  const message = document.getElementById('payment-message');
  document.getElementById('payment-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    const confirmParams = {return_url: window.location.origin + '/return?order=42'};
    if (never && params.get('noemail') !== '1') {
      confirmParams.payment_method_data = {billing_details: {email: email}};
    }
    const result = await stripe.confirmPayment({
      elements: elements,
      confirmParams: confirmParams,
      redirect: params.get('redirect') || 'always',
    });
    window.__result = JSON.parse(JSON.stringify(result));
    message.textContent = result.error ? result.error.message : result.paymentIntent.status;
    button.disabled = false;
  });
})();
