"""Formerly created one shared workflow role with row privileges on the data database's
tables. Superseded by per-owner roles and schemas (`leads/owner_data.py`); 0003 takes the
old role's privileges back where this migration once ran."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]

    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
