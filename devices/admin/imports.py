"""The admin's spreadsheet imports: upload → preview (a dry run) → confirm → result, for devices and
battery replacements. Views of :class:`devices.admin.DeviceAdmin` (its ``get_urls``), scoped like it:
a manager imports into the organisations they manage, a viewer cannot import, and an import job of
another organisation behaves like a missing one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from devices.choices import ImportKind, ImportStatus
from devices.imports import columns
from devices.imports.results import Outcome
from devices.imports.services import import_job_confirm, import_job_create
from devices.models import ImportJob
from fleet.models import Organisation
from fleet.scoping import RecordsAdmin, ScopedRelatedFieldListFilter, is_superuser
from fleet.selectors import organisation_ids_for_request

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

# URL segment → kind, and what each kind's page says.
KINDS = {"devices": ImportKind.DEVICES, "battery-replacements": ImportKind.BATTERY_REPLACEMENTS}
COLUMNS = {ImportKind.DEVICES: columns.DEVICE_COLUMNS, ImportKind.BATTERY_REPLACEMENTS: columns.BATTERY_COLUMNS}
TITLES = {
    ImportKind.DEVICES: _("Import devices"),
    ImportKind.BATTERY_REPLACEMENTS: _("Import battery replacements"),
}
ACCEPTED_EXTENSIONS = (".csv", ".txt", ".xlsx")
RECENT_JOBS = 10


def managed_organisations(request: HttpRequest) -> QuerySet[Organisation]:
    """Organisations the user may import into: those they manage (every one for a superuser)."""
    if is_superuser(request):
        return Organisation.objects.all()
    return Organisation.objects.filter(pk__in=organisation_ids_for_request(request, manage=True))


class ImportUploadForm(forms.Form):
    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none(), label=_("organisation"))
    file = forms.FileField(
        label=_("file"), help_text=_("CSV (comma or semicolon separated, UTF-8 or Windows) or XLSX.")
    )

    def __init__(self, *args: object, organisations: QuerySet[Organisation], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = organisations
        if len(organisations) == 1:
            self.fields["organisation"].initial = organisations[0].pk

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                gettext("This file is %(size)s; the largest accepted is %(limit)s.")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(limit)}
            )
        if not upload.name.lower().endswith(ACCEPTED_EXTENSIONS):
            raise forms.ValidationError(gettext("Upload a .csv or .xlsx file."))
        return upload


def import_urls(model_admin: ModelAdmin) -> list:
    wrap = model_admin.admin_site.admin_view
    return [
        path(
            "import/<slug:kind>/",
            wrap(lambda request, kind: upload_view(model_admin, request, kind)),
            name="devices_device_import",
        ),
        path(
            "import/jobs/<int:job_id>/",
            wrap(lambda request, job_id: job_view(model_admin, request, job_id)),
            name="devices_device_import_job",
        ),
        path(
            "import/jobs/<int:job_id>/result.csv",
            wrap(lambda request, job_id: result_view(model_admin, request, job_id)),
            name="devices_device_import_result",
        ),
    ]


def _context(model_admin: ModelAdmin, request: HttpRequest, title: str) -> dict:
    return {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, "title": title}


def upload_view(model_admin: ModelAdmin, request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in KINDS:
        raise Http404
    kind = KINDS[kind]
    organisations = managed_organisations(request)
    if not organisations.exists():
        raise PermissionDenied  # viewers and staff users without membership: nothing to import into
    form = ImportUploadForm(
        request.POST or None,
        request.FILES or None,
        organisations=organisations,
        initial={"organisation": request.GET.get("organisation")},
    )
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        job = import_job_create(
            organisation=form.cleaned_data["organisation"],
            kind=kind,
            filename=upload.name,
            data=upload.read(),
            created_by=request.user,
        )
        return HttpResponseRedirect(reverse("admin:devices_device_import_job", args=[job.pk]))
    context = {
        **_context(model_admin, request, str(TITLES[kind])),
        "form": form,
        "columns": COLUMNS[kind],
        "max_size": settings.IMPORT_MAX_UPLOAD_BYTES,
        "kind": kind,
        # The latest imports of this kind into the user's organisations, to come back to a preview or a result.
        "recent_jobs": ImportJob.objects.filter(kind=kind, organisation__in=organisations)
        .select_related("organisation", "created_by")
        .only("pk", "filename", "status", "created_at", "organisation__name", "created_by__username")
        .order_by("-created_at")[:RECENT_JOBS],
    }
    return TemplateResponse(request, "admin/devices/import_upload.html", context, status=400 if form.errors else 200)


def _job(request: HttpRequest, job_id: int) -> ImportJob:
    """The job, if the user manages its organisation; another organisation's job is a 404, not a 403."""
    job = (
        ImportJob.objects.select_related("organisation", "created_by")
        .defer("content", "result_csv")
        .filter(pk=job_id, organisation__in=managed_organisations(request))
        .first()
    )
    if job is None:
        raise Http404(gettext("No import with this id."))
    return job


def job_view(model_admin: ModelAdmin, request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job(request, job_id)
    if request.method == "POST":
        if import_job_confirm(job=job):
            messages.success(request, gettext("Import confirmed."))
        else:
            messages.warning(request, gettext("This import is not waiting for a confirmation."))
        return HttpResponseRedirect(reverse("admin:devices_device_import_job", args=[job.pk]))
    summary = job.summary or {}
    counts = summary.get("counts", {})
    labels = dict(Outcome.choices)
    context = {
        **_context(model_admin, request, str(TITLES[job.kind])),
        "job": job,
        "summary": summary,
        "counts": [
            (labels.get(name, gettext("empty lines skipped")), counts.get(name, 0))
            for name in (*Outcome.values, "skipped")
        ],
        "working": job.status in {ImportStatus.PENDING, ImportStatus.CONFIRMED, ImportStatus.APPLYING},
        "can_confirm": job.status == ImportStatus.PREVIEWED,
        "has_result": job.status
        in {ImportStatus.PREVIEWED, ImportStatus.CONFIRMED, ImportStatus.APPLYING, ImportStatus.DONE},
        "upload_again": reverse(
            "admin:devices_device_import",
            args=[next(slug for slug, value in KINDS.items() if value == job.kind)],
        ),
    }
    return TemplateResponse(request, "admin/devices/import_job.html", context)


def result_view(model_admin: ModelAdmin, request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job(request, job_id)
    text = ImportJob.objects.filter(pk=job.pk).values_list("result_csv", flat=True).get()
    if not text:
        raise Http404(gettext("This import has no result yet."))
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    stem = job.filename.rsplit(".", 1)[0] or "import"
    suffix = "result" if job.status == ImportStatus.DONE else "preview"
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=f"{stem}-{suffix}.csv")
    return response


@admin.register(ImportJob)
class ImportJobAdmin(RecordsAdmin):
    """The imports of the user's organisations, for the record: who uploaded which file, what it did.
    Read-only (an import is made on its own pages); a superuser may delete one."""

    list_display = ("created_at", "filename", "kind", "organisation", "created_by", "status", "finished_at", "page")
    list_filter = ("kind", "status", ("organisation", ScopedRelatedFieldListFilter))
    list_select_related = ("organisation", "created_by")
    ordering = ("-created_at", "-id")
    # The file and the per-row result can be megabytes: the result is downloaded from the import's page.
    fields = ("organisation", "kind", "filename", "status", "created_by", "created_at", "finished_at", "summary")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportJob]:
        return super().get_queryset(request).defer("content", "result_csv")

    @admin.display(description=_("import page"))
    def page(self, obj: ImportJob) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:devices_device_import_job", args=[obj.pk]), _("open"))
