"""Settings for the test suite: the real PostgreSQL and Redis, unless told otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/klyntos")
os.environ.setdefault("DATA_DATABASE_URL", "postgres://root@127.0.0.1:5432/klyntos_data")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from klyntos.settings import *  # noqa: E402,F403

# Hashing passwords slowly buys nothing in tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
