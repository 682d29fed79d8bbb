"""URLs of the test project: an echo of what Django sees, and two pages for benchmarks."""

from django.contrib import admin
from django.urls import path

from testsite import views

urlpatterns = [
    path("whoami/", views.whoami),
    path("page/", views.page, name="page"),
    path("catalog/", views.catalog, name="catalog"),
    path("slow/", views.slow),
    path("download/<str:name>", views.download),
    path("upload/", views.upload),
    path("remember/", views.remember),
    path("admin/", admin.site.urls),
]
