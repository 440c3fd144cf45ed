"""REST API of CSV imports: the upload with its kind (leads, or activities of existing leads) and what the
mapping leaves out. Reading jobs and the error report are the capture module's ImportViewSet's."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from leadcrm.api import idempotent

from .. import imports
from ..models import ImportKind
from . import capture


class UnmappedColumnSerializer(serializers.Serializer):
    column = serializers.CharField()
    suggested_target = serializers.CharField(help_text="custom_fields.<key> (activities: properties.<key>)")


class ImportSerializer(capture.ImportSerializer):
    historical = serializers.SerializerMethodField(
        help_text="An import of history (created, stage or deal dates, or past activities): it re-scores the leads "
                  "but sends no webhooks and starts no campaign joins, routing or nurture.")
    unmapped_columns = serializers.SerializerMethodField(
        help_text="Columns the mapping leaves out, each with the target that would keep it (a custom field of the "
                  "lead, or a property of the activity). Upload again with them in `mapping` to keep them.")

    class Meta(capture.ImportSerializer.Meta):
        fields = [*capture.ImportSerializer.Meta.fields, "kind", "historical", "unmapped_columns"]
        read_only_fields = fields

    def get_historical(self, job) -> bool:
        return imports.is_historical(job)

    @extend_schema_field(UnmappedColumnSerializer(many=True))
    def get_unmapped_columns(self, job) -> list[dict]:
        return imports.unmapped_columns(job.headers, job.mapping, imports.kind_of(job.kind).prefix)


class ImportViewSet(capture.ImportViewSet):
    serializer_class = ImportSerializer

    @extend_schema(
        request={"multipart/form-data": inline_serializer("ImportUpload", {
            "file": serializers.FileField(),
            "kind": serializers.ChoiceField(choices=ImportKind.choices, required=False, default=ImportKind.LEADS),
            "mapping": serializers.CharField(required=False)})},
        responses={202: ImportSerializer},
    )
    @idempotent
    def create(self, request):
        """Upload a CSV and start importing it. `kind`: `leads` (the default) or `activities` (each row an activity
        of an existing lead, found by email or external_id, with its type and time). `mapping` (JSON: CSV header ->
        target, "" to skip a column, `custom_fields.<key>` / `properties.<key>` to keep one under a key) chooses
        the columns; without it the mapping guessed from the headers is used. `unmapped_columns` in the answer
        lists the columns left out."""
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Attach a CSV file as 'file' (multipart/form-data)."]})
        with transaction.atomic():
            job = imports.create_import(
                organization_id=self.organization.pk, upload=upload, created_by=capture._user(request),
                mapping=request.data.get("mapping"), kind=request.data.get("kind") or ImportKind.LEADS,
            )
            imports.start_import(job=job)
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)
