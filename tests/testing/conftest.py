"""The toolkit's tests run pytest inside pytest (pytester), which takes the modules imported
before each inner run as they are and drops those it imported. stripe-python keeps a
``requests`` session per thread: made by an inner run's copy of ``requests`` and used by the
next run's, its cookie jar is "not a CookieJar". Importing ``requests`` here keeps one copy."""

import requests  # noqa: F401
