"""OpenAPI schema plumbing: the API-key header (drf-spectacular extension, loaded from AppConfig.ready) and hooks."""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "leadcrm.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`Api-Key <key>`: create keys under Settings → API keys or with `manage.py create_api_key`.",
        }


def drop_duplicate_routes(endpoints):
    """Preprocessing hook: a route served both with and without a trailing slash (the import error report's
    `errors.csv`) is documented once, without it, so operation ids stay unique."""
    paths = {path for path, *_ in endpoints}
    return [endpoint for endpoint in endpoints if not (endpoint[0].endswith("/") and endpoint[0][:-1] in paths)]


ERROR_BODY = inline_serializer("Error", {
    "detail": serializers.CharField(required=False, help_text="What went wrong (all but validation errors)."),
    "errors": serializers.DictField(required=False, help_text="Validation errors: {field: [messages]}."),
})
ERROR_RESPONSES = {
    "400": "Invalid input: `errors` maps each field to its messages.",
    "401": "No API key or session, or an invalid or revoked key.",
    "403": "This key or member may not do this.",
    "404": "No such object in this organization (or an invalid cursor).",
    "429": "Too many requests: wait the seconds in the Retry-After header.",
}
BODY_ERROR_RESPONSES = {
    "413": "The request body is over the size limit.",
    "415": "The body is not in a content type this operation takes.",
}


class AutoSchema(openapi.AutoSchema):
    """Every operation also documents the errors any operation can answer (auth, permission, not found, throttled,
    and for those with a body, too large or the wrong content type), in the shape leadcrm.api gives them."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = dict(ERROR_RESPONSES)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(BODY_ERROR_RESPONSES)
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(OpenApiResponse(ERROR_BODY, description=description),
                                                              code, direction=direction)
        return responses
