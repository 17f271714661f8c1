"""Writing the same fields of many rows with one statement sent once (a batch of steps, of sent
messages), where `save(update_fields=…)` would build and send one UPDATE for each row."""

from django.db import connection


def update_many(rows: list, fields: list[str]) -> None:
    """UPDATE these `fields` of `rows` (one model's instances) to their values in memory. No
    signals are sent and `auto_now` is not applied: set such fields before."""
    if not rows:
        return
    meta, quote = rows[0]._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(column.column)} = %s" for column in columns)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    values = [
        [column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns]
        + [meta.pk.get_db_prep_value(row.pk, connection)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)
