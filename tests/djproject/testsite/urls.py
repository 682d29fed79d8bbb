"""URLs of the test project: an echo of what Django sees, and a page for benchmarks."""

from django.contrib import admin
from django.urls import path

from testsite import views

urlpatterns = [
    path("whoami/", views.whoami),
    path("page/", views.page),
    path("slow/", views.slow),
    path("upload/", views.upload),
    path("remember/", views.remember),
    path("admin/", admin.site.urls),
]
