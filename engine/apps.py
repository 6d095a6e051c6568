from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Runs"

    def ready(self) -> None:
        from engine.config import (
            loop_item_limits,
            off_peak_window,
            preconnect_wait,
            provider_settings,
        )
        from engine.core.prices import PriceError, parse_prices
        from engine.slots import check_settings as check_slot_settings

        # A price table nobody can use is a startup error, not dollars silently missing.
        try:
            parse_prices(settings.KLYNTOS_MODEL_PRICES)
        except PriceError as exc:
            raise ImproperlyConfigured(f"KLYNTOS_MODEL_PRICES: {exc}") from None
        # A bad KLYNTOS_PROVIDER_* value stops the process when it starts, naming the
        # entry, rather than failing the first run that calls a provider.
        try:
            provider_settings()
            check_slot_settings()
            off_peak_window()
            preconnect_wait()
            loop_item_limits()
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
