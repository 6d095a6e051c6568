from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Runs"

    def ready(self) -> None:
        from engine.core.prices import PriceError, parse_prices

        # A price table nobody can use is a startup error, not dollars silently missing.
        try:
            parse_prices(settings.KLYNTOS_MODEL_PRICES)
        except PriceError as exc:
            raise ImproperlyConfigured(f"KLYNTOS_MODEL_PRICES: {exc}") from None
