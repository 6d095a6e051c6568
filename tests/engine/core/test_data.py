"""The embedded SQLite data connection lets workflows read and write rows, nothing more."""

from pathlib import Path

import pytest

from engine.core.data import SqliteData


@pytest.fixture
async def data(tmp_path: Path) -> SqliteData:
    other = tmp_path / "app.sqlite3"
    import sqlite3

    sqlite3.connect(other).execute("CREATE TABLE auth_user (username text)").connection.commit()
    path = tmp_path / "data.sqlite3"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE enriched_leads (lead_id text unique, name text, enriched_at text)")
    setup.commit()
    setup.close()
    connection = SqliteData(str(path))
    yield connection
    await connection.aclose()


async def test_rows_can_be_written_and_read(data: SqliteData) -> None:
    upsert = (
        "INSERT INTO enriched_leads (lead_id, name, enriched_at) VALUES (?, ?, NOW()) "
        "ON CONFLICT (lead_id) DO UPDATE SET name = excluded.name, enriched_at = excluded.enriched_at"
    )
    assert (await data.execute(upsert, ["a", "Ada"]))["rowcount"] == 1
    await data.execute(upsert, ["a", "Ada L."])
    rows = (await data.execute("SELECT lead_id, name FROM enriched_leads", []))["rows"]
    assert rows == [{"lead_id": "a", "name": "Ada L."}]
    with_cte = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) AS c FROM n"
    assert (await data.execute(with_cte, []))["rows"] == [{"c": 3}]


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{app}' AS app",
        "VACUUM INTO '{tmp}/copy.sqlite3'",
        "PRAGMA table_info(enriched_leads)",
        "CREATE TABLE stolen (x)",
        "DROP TABLE enriched_leads",
        "SELECT load_extension('x')",
        "DELETE FROM sqlite_master",
    ],
)
async def test_everything_else_is_refused(data: SqliteData, tmp_path: Path, sql: str) -> None:
    import sqlite3

    with pytest.raises(
        sqlite3.DatabaseError, match="not authorized|authorization denied|may not be modified"
    ):
        statement = sql.replace("{app}", str(tmp_path / "app.sqlite3")).replace(
            "{tmp}", str(tmp_path)
        )
        await data.execute(statement, [])
    assert not (tmp_path / "copy.sqlite3").exists()
