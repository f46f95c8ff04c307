"""Helpers of the checkout server (``bookpay.server``): security headers and the WSGI runner."""
