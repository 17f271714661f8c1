"""Error pages: JSON under /v1/, readable HTML elsewhere."""

from django.http import JsonResponse
from django.shortcuts import render


def not_found(request, exception=None):
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": "not found"}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": "internal error"}, status=500)
    return render(request, "500.html", status=500)
