from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's parser, with absurdly nested input (which exhausts the recursion limit) as a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
