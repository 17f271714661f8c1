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


def insert_unless_taken(row) -> bool:
    """INSERT `row` (a new instance, its primary key set) unless a unique constraint already
    holds its values (another transaction wrote them first): return whether it was written.
    One statement, where catching `save()`'s IntegrityError needs a savepoint around it."""
    meta, quote = row._meta, connection.ops.quote_name
    fields = meta.concrete_fields
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
    )
    values = [field.get_db_prep_save(field.pre_save(row, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        written = cursor.rowcount == 1
    if written:
        row._state.adding, row._state.db = False, connection.alias
    return written
