"""Device requests in the web process: the ASGI fast path in front of Django, and the group
commit that writes many requests' work in one transaction."""
