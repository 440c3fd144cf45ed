"""Form management pages and the public form. (Being built.)"""

from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404()


form_list = form_edit = form_detail = public_form = _todo
