"""Evidence kept as its canonical JSON text instead of jsonb.

PostgreSQL's jsonb -> text cast spells a document its own way (keys ordered by length,
", " and ": "), so rows stored before are rewritten in the canonical spelling their
sha256 and size_bytes were computed from. SQLite already stored that text as given.
On PostgreSQL the column is compressed with lz4 where the server has it: a 200 MB
manifest is stored in half the time pglz takes, at about the same size.
"""

import json

from django.db import DatabaseError, migrations, models, transaction


def canonical_spelling(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    evidence = apps.get_model("analysis", "AnalysisEvidence")
    for pk in evidence.objects.values_list("pk", flat=True).iterator(chunk_size=100):
        text = evidence.objects.filter(pk=pk).values_list("data", flat=True).get()
        canonical = json.dumps(
            json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        if canonical != text:
            evidence.objects.filter(pk=pk).update(data=canonical)


def lz4_compression(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic():
            schema_editor.execute(
                "ALTER TABLE analysis_analysisevidence ALTER COLUMN data SET COMPRESSION lz4"
            )
    except DatabaseError:  # a server built without lz4 keeps pglz
        pass


class Migration(migrations.Migration):
    dependencies = [
        ("analysis", "0007_sandbox_slots"),
    ]

    operations = [
        migrations.AlterField(
            model_name="analysisevidence",
            name="data",
            field=models.TextField(help_text="The document as canonical JSON text (sorted keys)."),
        ),
        migrations.RunPython(canonical_spelling, migrations.RunPython.noop),
        migrations.RunPython(lz4_compression, migrations.RunPython.noop),
    ]
