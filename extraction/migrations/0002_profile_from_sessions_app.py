"""`Profile` moves here from sessions_app, beside its logic: the same table
(`sessions_app_profile`), the same constraints and indexes, no data moved. Only Django's view of
the models changes; the database is left as it is."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("extraction", "0001_initial"),
        ("sessions_app", "0005_session_api"),
    ]
    # sessions_app forgets the model once this app has it. Said here, not there: the ground
    # floor's migrations name no feature app.
    run_before = [("sessions_app", "0006_profile_moved_to_extraction")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Profile",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("version", models.PositiveIntegerField()),
                        ("data", models.JSONField()),
                        ("instructions", models.TextField()),
                        ("turn_count", models.PositiveIntegerField()),
                        ("last_position", models.BigIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "session",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="profiles",
                                to="sessions_app.session",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "sessions_app_profile",
                        "ordering": ["session", "-version"],
                        "indexes": [
                            models.Index(fields=["created_at"], name="profile_created_at_idx")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("session", "version"), name="profile_session_version_uniq"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(("version__gte", 1)),
                                name="profile_version_positive",
                            ),
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name="extractionrun",
                    name="profile",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="extraction.profile",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
