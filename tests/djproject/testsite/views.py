"""Views the live tests and the benchmark call."""

import os
import socket
import time

from django.contrib.sessions.backends.db import SessionStore
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpResponse, JsonResponse
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


def slow(request):
    """Answer after ?seconds= (at most 30): a request that outlives an app server's or nginx's timeout."""
    seconds = min(float(request.GET.get("seconds", "1")), 30.0)
    time.sleep(seconds)
    return JsonResponse({"slept": seconds, "pid": os.getpid()})


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
