"""Item.import_batch without a database constraint (issue 2, bench/import.py).

PostgreSQL checked the foreign key once per imported row, 100k times for the one batch of an
import: 5 µs of the server's ~34 µs per item. Only the admin reads the link, and deleting a batch
through Django still sets it to NULL (on_delete is Django's, not the database's).
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0008_queue_regular_items"),
    ]

    operations = [
        migrations.AlterField(
            model_name="item",
            name="import_batch",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="items",
                to="annotate.importbatch",
            ),
        ),
    ]
