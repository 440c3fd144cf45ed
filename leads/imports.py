"""CSV import. (Being built.)"""

from rest_framework.exceptions import ValidationError


def create_import(*, organization_id, upload, created_by, mapping):
    raise ValidationError({"file": ["CSV import is not available yet."]})


def start_import(*, job):
    pass


def error_report_response(job):
    raise NotImplementedError
