from .forms import rate_limited  # noqa: F401  (settings.RATELIMIT_VIEW)
