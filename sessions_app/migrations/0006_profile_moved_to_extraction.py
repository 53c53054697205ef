"""`Profile` moved to extraction (extraction/migrations/0002, which runs before this one): the
model leaves this app's state; its table stays, now extraction's."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0005_session_api"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Profile")],
            database_operations=[],
        ),
    ]
