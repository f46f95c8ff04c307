"""bookpay: a Stripe Payment Intents bookshop you can drive from the command line."""

__version__ = "0.1.0"
