from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("leadcrm", "0001_initial")]

    operations = []
