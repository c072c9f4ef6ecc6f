"""The queue's index covers regular items only (issue 3).

Gold items are not capped by overlap, so every gold item served once stayed in the range each
"next" scans (human_assigned below overlap) and was read and filtered out on every call: ~130
rows per "next" after a few thousand cycles of the queue benchmark, growing with use.
"""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0007_item_storage"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="item",
            name="item_queue_idx",
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                condition=models.Q(("is_gold", False)),
                fields=["project", "route", "human_assigned"],
                name="item_queue_idx",
            ),
        ),
    ]
