"""jit = off as the database's own default, so connections that cannot pass startup options (through PgBouncer,
which refuses `options`) get it too (leadcrm/settings.py says why it is off)."""

from django.db import DatabaseError, migrations, transaction


def _alter_database(setting: str):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            name = connection.ops.quote_name(cursor.fetchone()[0])
            try:
                with transaction.atomic(using=connection.alias):
                    cursor.execute(f"ALTER DATABASE {name} {setting}")
            except DatabaseError:  # not the database's owner: README "Running in production" says what to run
                pass

    return run


class Migration(migrations.Migration):
    dependencies = [("leadcrm", "0006_organization_email_sender")]
    operations = [migrations.RunPython(_alter_database("SET jit = off"), _alter_database("RESET jit"), elidable=False)]
