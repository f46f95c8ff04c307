"""The checkout server's parts (``bookpay.server``): request inputs, views and templates, security
headers, the WSGI runner, and the `bookpay serve` launcher."""
