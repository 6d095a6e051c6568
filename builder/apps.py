from django.apps import AppConfig


class BuilderConfig(AppConfig):
    name = "builder"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from builder.selectors import env_for_owner
        from engine import secrets_registry

        # The admin masks run data with the owner's secrets; engine cannot import builder.
        secrets_registry.set_owner_source(env_for_owner)
