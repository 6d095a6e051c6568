"""The personalised-emails and image-batch templates' tables: created per owner (leads/owner_data.py),
so this records their shape only (unmanaged)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('leads', '0003_per_owner_data'),
    ]

    operations = [
        migrations.CreateModel(
            name='ImageDescription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('batch', models.CharField(max_length=100)),
                ('image_id', models.CharField(max_length=100)),
                ('url', models.TextField()),
                ('caption', models.TextField()),
                ('tags', models.TextField(blank=True)),
                ('quality', models.CharField(blank=True, max_length=20)),
                ('described_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'image_descriptions',
                'ordering': ['batch', 'image_id'],
                'managed': False,
            },
        ),
        migrations.CreateModel(
            name='PersonalisedEmail',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('campaign', models.CharField(max_length=100)),
                ('recipient_id', models.CharField(max_length=100)),
                ('name', models.TextField()),
                ('email', models.TextField()),
                ('company', models.TextField(blank=True)),
                ('subject', models.TextField()),
                ('body', models.TextField()),
                ('created_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'personalised_emails',
                'ordering': ['campaign', 'recipient_id'],
                'managed': False,
            },
        ),
    ]
