"""CSV import pages. (Being built.)"""

from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404()


import_list = import_upload = import_detail = import_progress = import_errors_csv = _todo
