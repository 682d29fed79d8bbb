"""Views the live tests and the benchmark call."""

import os
import socket
import sys
import time
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from testsite.release import RELEASE


def whoami(request):
    """What Django believes about this request: scheme, host, client address, serving process and machine."""
    return JsonResponse(
        {
            "secure": request.is_secure(),
            "scheme": request.scheme,
            "host": request.get_host(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "x_forwarded_for": request.META.get("HTTP_X_FORWARDED_FOR"),
            "pid": os.getpid(),
            "server_port": request.META.get("SERVER_PORT"),
            "release": RELEASE,
            "hostname": socket.gethostname(),
        }
    )


def page(request):
    """A small HTML page, the same every time."""
    rows = "".join(f"<li>item {i}</li>" for i in range(50))
    return HttpResponse(f"<!doctype html><title>page</title><ul>{rows}</ul>")


# The rows the template page lists (25 a page, as in the pagination example of Django's documentation):
# made once per process, where a site would run a query.
PRODUCTS = [
    {
        "sku": f"SKU-{i:04d}",
        "name": f"product number {i}",
        "price": 3.5 + i * 1.25,
        "stock": i % 7,
        "updated": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=i),
        "description": "A sturdy thing, made to last, that does one job well and costs little to keep running. " * 2,
    }
    for i in range(25)
]


def catalog(request):
    """A page as sites render them: a template extending a base, 25 table rows with filters and links, a form."""
    return render(request, "testsite/catalog.html", {"products": PRODUCTS, "query": request.GET.get("q", "")})


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


@csrf_exempt
def upload(request):
    """Save the POSTed body as an upload under MEDIA_ROOT; answer with its stored name and URL."""
    if request.method != "POST":
        return HttpResponse(status=405)
    name = default_storage.save(request.GET.get("name", "upload.bin"), ContentFile(request.body))
    return JsonResponse({"name": name, "url": default_storage.url(name)})


def remember(request):
    """Write a row to the database (a new session) and say its key: the app can write its database."""
    session = SessionStore()
    session["seen"] = True
    session.save()
    return JsonResponse({"session": session.session_key})
