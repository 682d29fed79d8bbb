"""Views the live tests and the benchmark call."""

import os
import sys
import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse


def whoami(request):
    """What Django believes about this request: scheme, host, client address, serving process."""
    return JsonResponse(
        {
            "secure": request.is_secure(),
            "scheme": request.scheme,
            "host": request.get_host(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "x_forwarded_for": request.META.get("HTTP_X_FORWARDED_FOR"),
            "pid": os.getpid(),
            "server_port": request.META.get("SERVER_PORT"),
        }
    )


def page(request):
    """A small HTML page, the same every time."""
    rows = "".join(f"<li>item {i}</li>" for i in range(50))
    return HttpResponse(f"<!doctype html><title>page</title><ul>{rows}</ul>")


def slow(request):
    """Answer after ?seconds= (at most 30): a request that outlives an app server's or nginx's timeout."""
    seconds = min(float(request.GET.get("seconds", "1")), 30.0)
    # A test that stops the app mid-request waits for this line: the request is being served.
    print(f"slow request started: {request.GET.get('mark', '-')}", file=sys.stderr, flush=True)
    time.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})


def download(request, name):
    """A protected file, for a request the app allows (?allow=yes): nginx sends it on X-Accel-Redirect."""
    if request.GET.get("allow") != "yes":
        return HttpResponseForbidden("not yours")
    response = HttpResponse(content_type="application/pdf")
    response["X-Accel-Redirect"] = f"{settings.PROTECTED_MEDIA_URL}{name}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
