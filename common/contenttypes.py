"""Moving models from one app to another: their content types follow them.

A model moved with ``SeparateDatabaseAndState`` keeps its table, but Django's ``ContentType`` row still names
the old app. Relabelling that row in place (rather than letting Django create a new one) keeps everything that
points at it: permissions (and so the groups and users holding them) and the admin's history. Left under the
old label, the row would be stale and ``remove_stale_contenttypes`` would delete it with its permissions.

For data migrations (``RunPython``): it uses the historical models of ``apps`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def relabel_content_types(
    apps: Any, schema_editor: Any, *, models: Iterable[str], from_label: str, to_label: str
) -> None:
    """Moves the content types of ``models`` (lower-case model names) from ``from_label`` to ``to_label``.

    1. No row under the old label (a fresh database): nothing to do, ``post_migrate`` creates the new one.
    2. Only the old row: relabelled in place.
    3. Both rows (``post_migrate`` ran between the state move and this migration): each permission of the
       old row moves to the new one, or hands its groups and users to the same codename there; the admin
       history is repointed; the old row is deleted.
    """
    alias = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    permissions = apps.get_model("auth", "Permission").objects.using(alias)
    history = apps.get_model("admin", "LogEntry").objects.using(alias)
    content_types = ContentType.objects.using(alias)
    for model in models:
        old = content_types.filter(app_label=from_label, model=model).first()
        if old is None:
            continue
        new = content_types.filter(app_label=to_label, model=model).first()
        if new is None:
            old.app_label = to_label
            old.save(update_fields=["app_label"])
            continue
        for permission in permissions.filter(content_type=old):
            twin = permissions.filter(content_type=new, codename=permission.codename).first()
            if twin is None:
                permission.content_type = new
                permission.save(update_fields=["content_type"])
            else:
                twin.group_set.add(*permission.group_set.all())
                twin.user_set.add(*permission.user_set.all())
        history.filter(content_type=old).update(content_type=new)
        old.delete()
    ContentType.objects.clear_cache()
