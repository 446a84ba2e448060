"""The migrations are the only way the schema is made: they must agree with the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import editorial.models  # noqa: F401  (every table in the metadata)
import magazine.models  # noqa: F401
from magazine import create_app
from magazine.db import db
from tests.conftest import app_settings


def differences(application) -> list:
    with application.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return compare_metadata(context, db.metadata)


def test_models_and_migrations_agree_on_this_database(app):
    # `app` was migrated with `flask db upgrade` (SQLite, or PostgreSQL in CI).
    assert differences(app) == []


def test_models_and_migrations_agree_on_sqlite(tmp_path):
    from flask_migrate import upgrade

    application = create_app(app_settings(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path))
    with application.app_context():
        upgrade()
    assert differences(application) == []


def test_downgrade_to_nothing_and_back(tmp_path):
    from flask_migrate import downgrade, upgrade

    application = create_app(app_settings(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path))
    with application.app_context():
        upgrade()
        downgrade(revision="base")
        assert sa.inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade()
        assert "users" in sa.inspect(db.engine).get_table_names()


@pytest.mark.parametrize("table", sorted(db.metadata.tables))
def test_every_constraint_is_named(table):
    for constraint in db.metadata.tables[table].constraints:
        assert constraint.name, f"unnamed constraint on {table}"


def test_the_migrations_have_one_head():
    """Two revisions written side by side must be chained before they land."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from magazine.config import PROJECT_ROOT

    config = Config(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several heads {heads}: set one's down_revision to the other"
