"""The schedule trigger's panel: when a cron expression in a time zone fires next."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builder.api_schema import answers, shape
from builder.parsers import BodyRequired
from builder.schedules import next_fires
from engine.core.cron import CronError, Schedule

PREVIEW_COUNT = 5


class PreviewSerializer(serializers.Serializer):
    cron = serializers.CharField(max_length=200)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")


SchedulePreview = shape(
    "SchedulePreview",
    next=serializers.ListField(child=serializers.DateTimeField()),
    explain=serializers.CharField(allow_blank=True),
)


class SchedulePreviewView(BodyRequired, APIView):
    @answers(SchedulePreview, status=200, request=PreviewSerializer, body=True)
    def post(self, request: Request) -> Response:
        form = PreviewSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        config = form.validated_data
        try:
            fires = next_fires(config, PREVIEW_COUNT)
            explain = Schedule.parse(config["cron"], config["timezone"]).explain()
        except CronError as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"next": [f.isoformat() for f in fires], "explain": explain})
